import { GetObjectTaggingCommand, PutObjectTaggingCommand } from '@aws-sdk/client-s3'
import { useEffect, useState } from 'react'
import { errorText } from '../clients.ts'
import { useSession } from '../session-context.ts'

/** One object's tags as `key=value` lines, editable when the caller may write them. */
export function TagsPanel(props: {
  bucket: string
  objectKey: string
  canWrite: boolean
  onClose(): void
}) {
  const { s3 } = useSession()
  const [text, setText] = useState<string | undefined>()
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()
  useEffect(() => {
    s3.send(new GetObjectTaggingCommand({ Bucket: props.bucket, Key: props.objectKey })).then(
      (out) => setText((out.TagSet ?? []).map((t) => `${t.Key}=${t.Value ?? ''}`).join('\n')),
      (err: unknown) => setError(errorText(err)),
    )
  }, [s3, props.bucket, props.objectKey])
  async function save() {
    const tags = (text ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .map((l) => {
        const i = l.indexOf('=')
        return i < 0 ? { Key: l, Value: '' } : { Key: l.slice(0, i), Value: l.slice(i + 1) }
      })
    try {
      await s3.send(
        new PutObjectTaggingCommand({
          Bucket: props.bucket,
          Key: props.objectKey,
          Tagging: { TagSet: tags },
        }),
      )
      setNotice('Tags saved')
      setError(undefined)
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <div className="share" data-testid="tags">
      <strong>Tags of {props.objectKey}</strong>
      <textarea
        className="code"
        rows={4}
        value={text ?? ''}
        // Read-only until loaded, so an edit is never overwritten by the stored tags.
        readOnly={!props.canWrite || text === undefined}
        onChange={(e) => setText(e.target.value)}
        placeholder="key=value, one per line (at most 10)"
        aria-label="Tags"
      />
      <div className="row">
        {props.canWrite && (
          <button type="button" onClick={() => void save()} data-testid="tags-save">
            Save tags
          </button>
        )}
        <button type="button" onClick={props.onClose}>
          Close
        </button>
      </div>
      {notice && <p className="notice">{notice}</p>}
      {error && <p className="error">{error}</p>}
    </div>
  )
}
