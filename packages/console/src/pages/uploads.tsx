import type { S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { useCallback, useRef, useState } from 'react'
import { errorText } from '../clients.ts'
import { formatBytes } from '../format.ts'

/** Part size of multipart uploads, in bytes; files up to this size go in one PUT. */
export const UPLOAD_PART_SIZE_BYTES = 8 * 1024 * 1024
/** Parts of one file in flight at once. */
export const UPLOAD_QUEUE_SIZE = 3

export interface UploadItem {
  id: number
  key: string
  size: number
  loaded: number
  state: 'uploading' | 'done' | 'failed' | 'cancelled'
  error?: string
}

/** Uploads with lib-storage (multipart above one part), their progress, and cancel. */
export function useUploads(s3: S3Client, onDone: () => void) {
  const [items, setItems] = useState<UploadItem[]>([])
  const running = useRef(new Map<number, Upload>())
  const nextId = useRef(1)

  const patch = useCallback((id: number, change: Partial<UploadItem>) => {
    setItems((list) => list.map((it) => (it.id === id ? { ...it, ...change } : it)))
  }, [])

  const start = useCallback(
    (bucket: string, key: string, file: File) => {
      const id = nextId.current++
      setItems((list) => [...list, { id, key, size: file.size, loaded: 0, state: 'uploading' }])
      const upload = new Upload({
        client: s3,
        params: {
          Bucket: bucket,
          Key: key,
          Body: file,
          ContentType: file.type || 'application/octet-stream',
        },
        partSize: UPLOAD_PART_SIZE_BYTES,
        queueSize: UPLOAD_QUEUE_SIZE,
        leavePartsOnError: false,
      })
      running.current.set(id, upload)
      upload.on('httpUploadProgress', (p) => {
        if (p.loaded !== undefined) patch(id, { loaded: p.loaded })
      })
      upload.done().then(
        () => {
          running.current.delete(id)
          patch(id, { state: 'done', loaded: file.size })
          onDone()
        },
        (err: unknown) => {
          running.current.delete(id)
          const aborted = (err as { name?: string }).name === 'AbortError'
          patch(id, aborted ? { state: 'cancelled' } : { state: 'failed', error: errorText(err) })
        },
      )
    },
    [s3, patch, onDone],
  )

  const cancel = useCallback((id: number) => {
    void running.current.get(id)?.abort()
  }, [])

  const clearFinished = useCallback(() => {
    setItems((list) => list.filter((it) => it.state === 'uploading'))
  }, [])

  return { items, start, cancel, clearFinished }
}

export function UploadList(props: {
  items: UploadItem[]
  cancel(id: number): void
  clearFinished(): void
}) {
  if (props.items.length === 0) return null
  return (
    <div className="uploads" data-testid="uploads">
      <div className="row">
        <strong>Uploads</strong>
        <button type="button" onClick={props.clearFinished}>
          Clear finished
        </button>
      </div>
      {props.items.map((it) => {
        const pct = it.size === 0 ? 100 : Math.floor((it.loaded / it.size) * 100)
        return (
          <div key={it.id} className={`upload ${it.state}`} data-testid="upload-item">
            <span className="name">{it.key}</span>
            <progress max={100} value={pct} data-testid="upload-progress" />
            <span className="pct" data-testid="upload-state">
              {it.state === 'uploading'
                ? `${pct}% of ${formatBytes(it.size)}`
                : it.state === 'failed'
                  ? `failed: ${it.error}`
                  : it.state}
            </span>
            {it.state === 'uploading' && (
              <button type="button" onClick={() => props.cancel(it.id)}>
                Cancel
              </button>
            )}
          </div>
        )
      })}
    </div>
  )
}
