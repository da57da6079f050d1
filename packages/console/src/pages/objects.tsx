import {
  type _Object,
  type CommonPrefix,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { type DragEvent, useCallback, useEffect, useRef, useState } from 'react'
import { type BucketCaps, confirmThen, errorText, type Whoami } from '../clients.ts'
import { formatBytes, formatDate } from '../format.ts'
import { href } from '../route.ts'
import { useSession } from '../session-context.ts'
import { BucketSettings } from './bucket-settings.tsx'
import { TagsPanel } from './tags.tsx'
import { UploadList, useUploads } from './uploads.tsx'

/** Keys per page: a listing never asks for more, so a bucket of millions stays fast. */
export const PAGE_SIZES = [50, 100, 500, 1000]
/** Lifetime of a download link, in seconds (it is used at once). */
const DOWNLOAD_LINK_SECONDS = 300
/** Lifetimes offered for share links, in seconds (SigV4 allows at most 7 days). */
const SHARE_LIFETIMES = [
  { label: '1 hour', seconds: 3600 },
  { label: '1 day', seconds: 86_400 },
  { label: '7 days', seconds: 604_800 },
]

interface Page {
  folders: CommonPrefix[]
  objects: _Object[]
  next?: string
}

export function ObjectsPage({ bucket, prefix }: { bucket: string; prefix: string }) {
  const { s3, admin } = useSession()
  const [caps, setCaps] = useState<BucketCaps | undefined>()
  const [search, setSearch] = useState('')
  const [pageSize, setPageSize] = useState(100)
  // tokens[i] is the continuation token of page i (page 0 has none).
  const [tokens, setTokens] = useState<(string | undefined)[]>([undefined])
  const [page, setPage] = useState<Page | undefined>()
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()
  const [share, setShare] = useState<{ key: string; url?: string } | undefined>()
  const [tagsOf, setTagsOf] = useState<string | undefined>()
  const [tab, setTab] = useState<'objects' | 'versions' | 'settings'>('objects')
  const [dragging, setDragging] = useState(false)
  const fileInput = useRef<HTMLInputElement>(null)
  const folderInput = useRef<HTMLInputElement>(null)
  const pageIndex = tokens.length - 1

  useEffect(() => {
    admin.call<Whoami>('GET', ['whoami'], { query: { bucket, prefix } }).then(
      (w) => setCaps(w.bucket?.capabilities),
      (err: unknown) => setError(errorText(err)),
    )
  }, [admin, bucket, prefix])

  // A new folder, search or page size starts again at the first page.
  // biome-ignore lint/correctness/useExhaustiveDependencies: these reset the paging
  useEffect(() => {
    setTokens([undefined])
  }, [bucket, prefix, search, pageSize])

  const load = useCallback(async () => {
    try {
      const out = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix + search,
          Delimiter: '/',
          MaxKeys: pageSize,
          ...(tokens[pageIndex] ? { ContinuationToken: tokens[pageIndex] } : {}),
        }),
      )
      setPage({
        folders: out.CommonPrefixes ?? [],
        objects: out.Contents ?? [],
        ...(out.IsTruncated && out.NextContinuationToken
          ? { next: out.NextContinuationToken }
          : {}),
      })
      setError(undefined)
    } catch (err) {
      setPage(undefined)
      setError(errorText(err))
    }
  }, [s3, bucket, prefix, search, pageSize, tokens, pageIndex])

  useEffect(() => {
    if (tab === 'objects') void load()
  }, [load, tab])

  const uploads = useUploads(s3, () => void load())

  // The folder picker: `webkitdirectory` has no React attribute, so it is set on the element.
  useEffect(() => {
    if (folderInput.current) folderInput.current.webkitdirectory = true
  })

  /** Uploads files under the current folder, each at its path relative to what was picked. */
  function addFiles(files: { file: File; path: string }[]) {
    for (const f of files) uploads.start(bucket, prefix + f.path, f.file)
  }

  function onDrop(e: DragEvent<HTMLDivElement>) {
    e.preventDefault()
    setDragging(false)
    if (!caps?.upload) return
    // Entries must be taken before the event handler returns; walking them is asynchronous.
    const entries = Array.from(e.dataTransfer.items, (i) => i.webkitGetAsEntry?.() ?? null)
    const files = Array.from(e.dataTransfer.files)
    if (entries.length === 0 || entries.some((x) => x === null)) {
      addFiles(pickedFiles(files))
      return
    }
    droppedFiles(entries as FileSystemEntry[]).then(addFiles, () => addFiles(pickedFiles(files)))
  }

  async function download(key: string, versionId?: string) {
    try {
      const name = key.slice(key.lastIndexOf('/') + 1)
      const url = await getSignedUrl(
        s3,
        new GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(versionId !== undefined ? { VersionId: versionId } : {}),
          ResponseContentDisposition: `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
        }),
        { expiresIn: DOWNLOAD_LINK_SECONDS },
      )
      const a = document.createElement('a')
      a.href = url
      a.download = name
      a.rel = 'noreferrer'
      a.click()
    } catch (err) {
      setError(errorText(err))
    }
  }

  async function remove(key: string) {
    await confirmThen(`Delete ${key}?`, setError, async () => {
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))
      setNotice(`Deleted ${key}`)
      await load()
    })
  }

  async function makeShare(key: string, seconds: number) {
    try {
      const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: key }), {
        expiresIn: seconds,
      })
      setShare({ key, url })
    } catch (err) {
      setError(errorText(err))
    }
  }

  const crumbs = prefix.split('/').filter((p) => p !== '')

  return (
    <section>
      <h2>
        <a href={href(['buckets'])}>Buckets</a> / <a href={href(['buckets', bucket])}>{bucket}</a>
        {crumbs.map((c, i) => (
          <span key={crumbs.slice(0, i + 1).join('/')}>
            {' / '}
            <a href={href(['buckets', bucket], { prefix: `${crumbs.slice(0, i + 1).join('/')}/` })}>
              {c}
            </a>
          </span>
        ))}
      </h2>
      <div className="tabs" data-testid={caps ? 'bucket-tabs' : undefined}>
        <button
          type="button"
          className={tab === 'objects' ? 'tab active' : 'tab'}
          onClick={() => setTab('objects')}
        >
          Objects
        </button>
        {caps?.listVersions && (
          <button
            type="button"
            className={tab === 'versions' ? 'tab active' : 'tab'}
            onClick={() => setTab('versions')}
            data-testid="tab-versions"
          >
            Versions
          </button>
        )}
        {caps && (caps.readVersioning || caps.readLifecycle || caps.readPolicy) && (
          <button
            type="button"
            className={tab === 'settings' ? 'tab active' : 'tab'}
            onClick={() => setTab('settings')}
            data-testid="tab-settings"
          >
            Settings
          </button>
        )}
      </div>
      {notice && <p className="notice">{notice}</p>}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {tab === 'versions' && (
        <VersionsView
          bucket={bucket}
          prefix={prefix}
          caps={caps}
          download={(key, versionId) => void download(key, versionId)}
        />
      )}
      {tab === 'settings' && caps && <BucketSettings bucket={bucket} caps={caps} />}
      {tab === 'objects' && (
        // biome-ignore lint/a11y/noStaticElementInteractions: the drop zone also has a button
        <div
          className={`drop-zone ${dragging ? 'dragging' : ''}`}
          onDragOver={(e) => {
            if (!caps?.upload) return
            e.preventDefault()
            setDragging(true)
          }}
          onDragLeave={() => setDragging(false)}
          onDrop={onDrop}
          data-testid="drop-zone"
        >
          <div className="row toolbar">
            <input
              type="search"
              placeholder={`Search by prefix in ${prefix || '/'}`}
              value={search}
              onChange={(e) => setSearch(e.target.value)}
              aria-label="Search by prefix"
              data-testid="search"
            />
            <label className="inline">
              Page size
              <select value={pageSize} onChange={(e) => setPageSize(Number(e.target.value))}>
                {PAGE_SIZES.map((n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ))}
              </select>
            </label>
            {caps?.upload && (
              <>
                <button
                  type="button"
                  onClick={() => fileInput.current?.click()}
                  data-testid="upload-button"
                >
                  Upload files
                </button>
                <input
                  ref={fileInput}
                  type="file"
                  multiple
                  hidden
                  data-testid="file-input"
                  onChange={(e) => {
                    if (e.target.files) addFiles(pickedFiles(e.target.files))
                    e.target.value = ''
                  }}
                />
                <button
                  type="button"
                  onClick={() => folderInput.current?.click()}
                  data-testid="upload-folder-button"
                >
                  Upload folder
                </button>
                <input
                  ref={folderInput}
                  type="file"
                  multiple
                  hidden
                  data-testid="folder-input"
                  onChange={(e) => {
                    if (e.target.files) addFiles(pickedFiles(e.target.files))
                    e.target.value = ''
                  }}
                />
                <span className="hint">or drop files and folders here</span>
              </>
            )}
          </div>
          <UploadList
            items={uploads.items}
            cancel={uploads.cancel}
            clearFinished={uploads.clearFinished}
          />
          {share && (
            <div className="share" data-testid="share">
              <strong>Share {share.key}</strong>
              <div className="row">
                {SHARE_LIFETIMES.map((l) => (
                  <button
                    type="button"
                    key={l.seconds}
                    onClick={() => void makeShare(share.key, l.seconds)}
                  >
                    Link valid {l.label}
                  </button>
                ))}
                <button type="button" onClick={() => setShare(undefined)}>
                  Close
                </button>
              </div>
              {share.url && (
                <div className="row">
                  <input
                    readOnly
                    value={share.url}
                    aria-label="Share link"
                    data-testid="share-url"
                  />
                  <button
                    type="button"
                    onClick={() => void navigator.clipboard?.writeText(share.url ?? '')}
                  >
                    Copy
                  </button>
                </div>
              )}
              <p className="hint">
                Anyone with the link can read this object until it expires, with your permissions.
              </p>
            </div>
          )}
          {tagsOf !== undefined && (
            <TagsPanel
              key={tagsOf}
              bucket={bucket}
              objectKey={tagsOf}
              canWrite={caps?.writeTags ?? false}
              onClose={() => setTagsOf(undefined)}
            />
          )}
          {page && (
            <table data-testid="object-list">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Size</th>
                  <th>Last modified</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {prefix !== '' && (
                  <tr>
                    <td colSpan={4}>
                      <a href={href(['buckets', bucket], { prefix: parentOf(prefix) })}>..</a>
                    </td>
                  </tr>
                )}
                {page.folders.map((f) => (
                  <tr key={f.Prefix} className="folder">
                    <td colSpan={4}>
                      <a href={href(['buckets', bucket], { prefix: f.Prefix })}>
                        {(f.Prefix ?? '').slice(prefix.length)}
                      </a>
                    </td>
                  </tr>
                ))}
                {page.objects.map((o) => (
                  <tr key={o.Key} data-testid="object-row">
                    <td>{(o.Key ?? '').slice(prefix.length)}</td>
                    <td>{formatBytes(o.Size)}</td>
                    <td>{formatDate(o.LastModified)}</td>
                    <td className="actions">
                      {caps?.read && (
                        <button
                          type="button"
                          onClick={() => void download(o.Key ?? '')}
                          data-testid="download-object"
                        >
                          Download
                        </button>
                      )}
                      {caps?.read && (
                        <button type="button" onClick={() => setShare({ key: o.Key ?? '' })}>
                          Share
                        </button>
                      )}
                      {caps?.readTags && (
                        <button type="button" onClick={() => setTagsOf(o.Key ?? '')}>
                          Tags
                        </button>
                      )}
                      {caps?.delete && (
                        <button
                          type="button"
                          className="danger"
                          onClick={() => void remove(o.Key ?? '')}
                          data-testid="delete-object"
                        >
                          Delete
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
                {page.folders.length === 0 && page.objects.length === 0 && (
                  <tr>
                    <td colSpan={4} className="hint">
                      Nothing here{search ? ` starting with “${search}”` : ''}.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          )}
          <div className="row pager">
            <button
              type="button"
              disabled={pageIndex === 0}
              onClick={() => setTokens((t) => t.slice(0, -1))}
            >
              Previous
            </button>
            <span data-testid="page-number">Page {pageIndex + 1}</span>
            <button
              type="button"
              disabled={page?.next === undefined}
              onClick={() => setTokens((t) => [...t, page?.next])}
              data-testid="next-page"
            >
              Next
            </button>
          </div>
        </div>
      )}
    </section>
  )
}

function parentOf(prefix: string): string {
  const p = prefix.slice(0, -1)
  const i = p.lastIndexOf('/')
  return i < 0 ? '' : p.slice(0, i + 1)
}

interface VersionRow {
  key: string
  versionId: string
  latest: boolean
  deleteMarker: boolean
  size?: number
  modified?: Date
}

/** Picked files with their paths: relative to the folder for a folder pick, else the name. */
export function pickedFiles(files: FileList | File[]): { file: File; path: string }[] {
  return Array.from(files, (file) => ({ file, path: file.webkitRelativePath || file.name }))
}

/**
 * The files of dropped entries, folders walked recursively: each file with its path relative
 * to the drop (`photos/2024/a.jpg` for a dropped `photos` folder), which becomes its key.
 */
export async function droppedFiles(
  entries: FileSystemEntry[],
): Promise<{ file: File; path: string }[]> {
  const out: { file: File; path: string }[] = []
  async function walk(entry: FileSystemEntry): Promise<void> {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) =>
        (entry as FileSystemFileEntry).file(resolve, reject),
      )
      out.push({ file, path: entry.fullPath.replace(/^\//, '') })
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader()
      // readEntries answers in batches (100 in Chromium) until it answers none.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
          reader.readEntries(resolve, reject),
        )
        if (batch.length === 0) break
        for (const child of batch) await walk(child)
      }
    }
  }
  for (const e of entries) await walk(e)
  return out
}

/** Every version and delete marker under the prefix, a page at a time (key/version markers). */
function VersionsView(props: {
  bucket: string
  prefix: string
  caps: BucketCaps | undefined
  download(key: string, versionId: string): void
}) {
  const { s3 } = useSession()
  const [rows, setRows] = useState<VersionRow[]>([])
  const [markers, setMarkers] = useState<{ key?: string; version?: string }[]>([{}])
  const [next, setNext] = useState<{ key?: string; version?: string } | undefined>()
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()
  const current = markers[markers.length - 1] ?? {}

  const load = useCallback(async () => {
    try {
      const out = await s3.send(
        new ListObjectVersionsCommand({
          Bucket: props.bucket,
          Prefix: props.prefix,
          MaxKeys: 100,
          ...(current.key ? { KeyMarker: current.key } : {}),
          ...(current.version ? { VersionIdMarker: current.version } : {}),
        }),
      )
      const list: VersionRow[] = [
        ...(out.Versions ?? []).map((v) => ({
          key: v.Key ?? '',
          versionId: v.VersionId ?? 'null',
          latest: v.IsLatest ?? false,
          deleteMarker: false,
          ...(v.Size !== undefined ? { size: v.Size } : {}),
          ...(v.LastModified ? { modified: v.LastModified } : {}),
        })),
        ...(out.DeleteMarkers ?? []).map((d) => ({
          key: d.Key ?? '',
          versionId: d.VersionId ?? 'null',
          latest: d.IsLatest ?? false,
          deleteMarker: true,
          ...(d.LastModified ? { modified: d.LastModified } : {}),
        })),
      ].sort((a, b) =>
        a.key === b.key
          ? (b.modified?.getTime() ?? 0) - (a.modified?.getTime() ?? 0)
          : a.key < b.key
            ? -1
            : 1,
      )
      setRows(list)
      setNext(
        out.IsTruncated
          ? {
              ...(out.NextKeyMarker ? { key: out.NextKeyMarker } : {}),
              ...(out.NextVersionIdMarker ? { version: out.NextVersionIdMarker } : {}),
            }
          : undefined,
      )
      setError(undefined)
    } catch (err) {
      setError(errorText(err))
    }
  }, [s3, props.bucket, props.prefix, current.key, current.version])

  useEffect(() => {
    void load()
  }, [load])

  async function removeVersion(r: VersionRow) {
    await confirmThen(`Delete version ${r.versionId} of ${r.key} for good?`, setError, async () => {
      await s3.send(
        new DeleteObjectCommand({ Bucket: props.bucket, Key: r.key, VersionId: r.versionId }),
      )
      setNotice(`Deleted version ${r.versionId} of ${r.key}`)
      await load()
    })
  }

  return (
    <div>
      {notice && <p className="notice">{notice}</p>}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <table data-testid="version-list">
        <thead>
          <tr>
            <th>Key</th>
            <th>Version</th>
            <th>Size</th>
            <th>Last modified</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr
              key={`${r.key}\0${r.versionId}`}
              className={r.deleteMarker ? 'marker' : ''}
              data-testid="version-row"
              data-version-id={r.versionId}
            >
              <td>{r.key}</td>
              <td>
                <code>{r.versionId}</code>
                {r.latest && <span className="badge">latest</span>}
                {r.deleteMarker && <span className="badge warn">delete marker</span>}
              </td>
              <td>{r.deleteMarker ? '–' : formatBytes(r.size)}</td>
              <td>{formatDate(r.modified)}</td>
              <td className="actions">
                {props.caps?.readVersion && !r.deleteMarker && (
                  <button
                    type="button"
                    onClick={() => props.download(r.key, r.versionId)}
                    data-testid="download-version"
                  >
                    Download
                  </button>
                )}
                {props.caps?.deleteVersion && (
                  <button
                    type="button"
                    className="danger"
                    onClick={() => void removeVersion(r)}
                    data-testid="delete-version"
                  >
                    Delete version
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="row pager">
        <button
          type="button"
          disabled={markers.length === 1}
          onClick={() => setMarkers((m) => m.slice(0, -1))}
        >
          Previous
        </button>
        <button
          type="button"
          disabled={next === undefined}
          onClick={() => next && setMarkers((m) => [...m, next])}
        >
          Next
        </button>
      </div>
    </div>
  )
}
