import { type Bucket, CreateBucketCommand, ListBucketsCommand } from '@aws-sdk/client-s3'
import { type FormEvent, useCallback, useEffect, useState } from 'react'
import { errorText } from '../clients.ts'
import { formatDate } from '../format.ts'
import { href } from '../route.ts'
import { useSession } from '../session-context.ts'

export function BucketsPage() {
  const { s3, me } = useSession()
  const caps = me.capabilities
  const [buckets, setBuckets] = useState<Bucket[] | undefined>()
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()

  const load = useCallback(async () => {
    try {
      const out = await s3.send(new ListBucketsCommand({}))
      setBuckets(out.Buckets ?? [])
      setError(undefined)
    } catch (err) {
      setError(errorText(err))
    }
  }, [s3])

  useEffect(() => {
    if (caps.listBuckets) void load()
  }, [caps.listBuckets, load])

  async function create(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const form = e.currentTarget
    const name = String(new FormData(form).get('name') ?? '').trim()
    try {
      await s3.send(new CreateBucketCommand({ Bucket: name }))
      setNotice(`Bucket ${name} created`)
      form.reset()
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }

  return (
    <section>
      <h2>Buckets</h2>
      {caps.createBucket && (
        <form className="row" onSubmit={(e) => void create(e)} data-testid="create-bucket">
          <input
            name="name"
            placeholder="new-bucket-name"
            required
            pattern="[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"
            title="3 to 63 lower-case letters, digits, dots and hyphens"
            aria-label="New bucket name"
          />
          <button type="submit">Create bucket</button>
        </form>
      )}
      {notice && <p className="notice">{notice}</p>}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {!caps.listBuckets && <p className="hint">Your roles do not allow listing buckets.</p>}
      {buckets && buckets.length === 0 && <p className="hint">No buckets yet.</p>}
      {buckets && buckets.length > 0 && (
        <table data-testid="bucket-list">
          <thead>
            <tr>
              <th>Name</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {buckets.map((b) => (
              <tr key={b.Name}>
                <td>
                  <a href={href(['buckets', b.Name ?? ''])}>{b.Name}</a>
                </td>
                <td>{formatDate(b.CreationDate)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  )
}
