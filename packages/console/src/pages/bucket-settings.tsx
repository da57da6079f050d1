import {
  type CORSRule,
  DeleteBucketCorsCommand,
  DeleteBucketLifecycleCommand,
  DeleteBucketPolicyCommand,
  GetBucketAclCommand,
  GetBucketCorsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketPolicyCommand,
  GetBucketVersioningCommand,
  GetPublicAccessBlockCommand,
  type Grant,
  type LifecycleRule,
  PutBucketCorsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  PutPublicAccessBlockCommand,
} from '@aws-sdk/client-s3'
import { useCallback, useEffect, useState } from 'react'
import { type BucketCaps, confirmThen, errorText } from '../clients.ts'
import { useSession } from '../session-context.ts'

/** The deployment's default for noncurrent versions (docs/lifecycle.md), in days. */
export const NONCURRENT_DEFAULT_DAYS = 7
/** The deployment's default for incomplete multipart uploads, in days. */
export const ABORT_INCOMPLETE_DEFAULT_DAYS = 7

export function BucketSettings({ bucket, caps }: { bucket: string; caps: BucketCaps }) {
  return (
    <div className="settings">
      {caps.readVersioning && <Versioning bucket={bucket} canWrite={caps.writeVersioning} />}
      {caps.readLifecycle && <Lifecycle bucket={bucket} canWrite={caps.writeLifecycle} />}
      {caps.readPolicy && <PolicyEditor bucket={bucket} canWrite={caps.writePolicy} />}
      {caps.readPublicAccessBlock && (
        <PublicAccessBlock bucket={bucket} canWrite={caps.writePublicAccessBlock} />
      )}
      {caps.readCors && <CorsEditor bucket={bucket} canWrite={caps.writeCors} />}
      {caps.readAcl && <AclView bucket={bucket} />}
    </div>
  )
}

function Versioning({ bucket, canWrite }: { bucket: string; canWrite: boolean }) {
  const { s3 } = useSession()
  const [status, setStatus] = useState<string | undefined>()
  const [error, setError] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      const out = await s3.send(new GetBucketVersioningCommand({ Bucket: bucket }))
      setStatus(out.Status ?? 'Unversioned')
    } catch (err) {
      setError(errorText(err))
    }
  }, [s3, bucket])
  useEffect(() => {
    void load()
  }, [load])
  async function set(s: 'Enabled' | 'Suspended') {
    try {
      await s3.send(
        new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: s } }),
      )
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <div className="card">
      <h3>Versioning</h3>
      <p>
        Status: <strong data-testid="versioning-status">{status ?? '…'}</strong>
      </p>
      {canWrite && (
        <div className="row">
          <button type="button" disabled={status === 'Enabled'} onClick={() => void set('Enabled')}>
            Enable
          </button>
          <button
            type="button"
            disabled={status !== 'Enabled'}
            onClick={() => void set('Suspended')}
          >
            Suspend
          </button>
        </div>
      )}
      {error && <p className="error">{error}</p>}
    </div>
  )
}

/** A lifecycle rule as the form edits it: days as typed, '' for none. */
interface RuleForm {
  id: string
  prefix: string
  enabled: boolean
  expireDays: string
  expiredMarkers: boolean
  noncurrentDays: string
  keepNewer: string
  abortDays: string
}

/** A new rule starts from the deployment's defaults, so they are visible and kept explicit. */
export function newRuleForm(n: number): RuleForm {
  return {
    id: `rule-${n}`,
    prefix: '',
    enabled: true,
    expireDays: '',
    expiredMarkers: false,
    noncurrentDays: String(NONCURRENT_DEFAULT_DAYS),
    keepNewer: '',
    abortDays: String(ABORT_INCOMPLETE_DEFAULT_DAYS),
  }
}

function ruleToForm(r: LifecycleRule, n: number): RuleForm {
  const num = (v: number | undefined) => (v === undefined ? '' : String(v))
  return {
    id: r.ID ?? `rule-${n}`,
    prefix: r.Filter?.Prefix ?? r.Prefix ?? '',
    enabled: r.Status === 'Enabled',
    expireDays: num(r.Expiration?.Days),
    expiredMarkers: r.Expiration?.ExpiredObjectDeleteMarker === true,
    noncurrentDays: num(r.NoncurrentVersionExpiration?.NoncurrentDays),
    keepNewer: num(r.NoncurrentVersionExpiration?.NewerNoncurrentVersions),
    abortDays: num(r.AbortIncompleteMultipartUpload?.DaysAfterInitiation),
  }
}

/** The rule a form describes, or the problems that keep it from being one S3 accepts. */
export function formToRule(f: RuleForm): { rule?: LifecycleRule; problems: string[] } {
  const problems: string[] = []
  const days = (v: string, what: string, max?: number): number | undefined => {
    if (v.trim() === '') return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1 || (max !== undefined && n > max))
      problems.push(`${what} must be a whole number from 1${max !== undefined ? ` to ${max}` : ''}`)
    return n
  }
  if (f.id.trim() === '') problems.push('Give the rule an ID')
  if (f.id.length > 255) problems.push('A rule ID has at most 255 characters')
  const expire = days(f.expireDays, 'Expire after (days)')
  const noncurrent = days(f.noncurrentDays, 'Noncurrent versions expire after (days)')
  const keepNewer = days(f.keepNewer, 'Noncurrent versions to keep', 100)
  const abort = days(f.abortDays, 'Abort incomplete uploads after (days)')
  if (expire !== undefined && f.expiredMarkers)
    problems.push('Removing expired delete markers goes with no expiry days (S3 refuses both)')
  if (keepNewer !== undefined && noncurrent === undefined)
    problems.push('Noncurrent versions to keep needs noncurrent days')
  if (expire === undefined && !f.expiredMarkers && noncurrent === undefined && abort === undefined)
    problems.push('A rule needs at least one action')
  if (problems.length > 0) return { problems }
  const rule: LifecycleRule = {
    ID: f.id.trim(),
    Status: f.enabled ? 'Enabled' : 'Disabled',
    Filter: { Prefix: f.prefix },
    ...(expire !== undefined
      ? { Expiration: { Days: expire } }
      : f.expiredMarkers
        ? { Expiration: { ExpiredObjectDeleteMarker: true } }
        : {}),
    ...(noncurrent !== undefined
      ? {
          NoncurrentVersionExpiration: {
            NoncurrentDays: noncurrent,
            ...(keepNewer !== undefined ? { NewerNoncurrentVersions: keepNewer } : {}),
          },
        }
      : {}),
    ...(abort !== undefined
      ? { AbortIncompleteMultipartUpload: { DaysAfterInitiation: abort } }
      : {}),
  }
  return { rule, problems }
}

function Lifecycle({ bucket, canWrite }: { bucket: string; canWrite: boolean }) {
  const { s3 } = useSession()
  const [rules, setRules] = useState<LifecycleRule[] | undefined>()
  const [draft, setDraft] = useState<string | undefined>()
  const [form, setForm] = useState<RuleForm | undefined>()
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      const out = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))
      setRules(out.Rules ?? [])
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchLifecycleConfiguration') setRules([])
      else setError(errorText(err))
    }
  }, [s3, bucket])
  useEffect(() => {
    void load()
  }, [load])
  let draftProblem: string | undefined
  let draftRules: LifecycleRule[] | undefined
  if (draft !== undefined && draft.trim() !== '') {
    try {
      const parsed = JSON.parse(draft) as unknown
      if (Array.isArray(parsed)) draftRules = parsed as LifecycleRule[]
      else draftProblem = 'Lifecycle rules are a JSON array of rules'
    } catch (err) {
      draftProblem = `Not valid JSON: ${(err as Error).message}`
    }
  }
  /** Stores `next` as the whole configuration (none left: the configuration is removed). */
  async function put(next: LifecycleRule[], said: string): Promise<boolean> {
    try {
      if (next.length === 0) await s3.send(new DeleteBucketLifecycleCommand({ Bucket: bucket }))
      else
        await s3.send(
          new PutBucketLifecycleConfigurationCommand({
            Bucket: bucket,
            LifecycleConfiguration: { Rules: next },
          }),
        )
      setError(undefined)
      setNotice(said)
      await load()
      return true
    } catch (err) {
      setNotice(undefined)
      setError(errorText(err))
      return false
    }
  }
  async function saveDraft() {
    if (await put(draftRules ?? [], 'Lifecycle rules saved')) setDraft(undefined)
  }
  const checked = form ? formToRule(form) : undefined
  async function saveForm(original: string | undefined) {
    if (!checked?.rule) return
    const rule = checked.rule
    // A rule replaces the one it was opened from (and any other of the same ID).
    const others = (rules ?? []).filter((r) => r.ID !== original && r.ID !== rule.ID)
    if (await put([...others, rule], `Rule ${rule.ID} saved`)) setForm(undefined)
  }
  async function removeRule(r: LifecycleRule) {
    if (!window.confirm(`Remove lifecycle rule ${r.ID ?? ''}?`)) return
    await put(
      (rules ?? []).filter((x) => x !== r),
      `Rule ${r.ID ?? ''} removed`,
    )
  }
  const [editing, setEditing] = useState<string | undefined>()
  const coversNoncurrent = rules?.some(
    (r) => r.Status === 'Enabled' && r.NoncurrentVersionExpiration !== undefined,
  )
  const set = (change: Partial<RuleForm>) => setForm((f) => (f ? { ...f, ...change } : f))
  return (
    <div className="card" data-testid="lifecycle">
      <h3>Lifecycle</h3>
      {rules && rules.length === 0 && <p>No lifecycle rules.</p>}
      {rules && rules.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>Rule</th>
              <th>Status</th>
              <th>Prefix</th>
              <th>Actions</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rules.map((r, i) => (
              <tr key={r.ID ?? i} data-testid="lifecycle-rule">
                <td>{r.ID ?? `rule ${i + 1}`}</td>
                <td>{r.Status}</td>
                <td>{r.Filter?.Prefix ?? r.Prefix ?? ''}</td>
                <td>{describeRule(r)}</td>
                <td className="actions">
                  {canWrite && (
                    <>
                      <button
                        type="button"
                        onClick={() => {
                          setEditing(r.ID)
                          setForm(ruleToForm(r, i + 1))
                        }}
                      >
                        Edit
                      </button>
                      <button type="button" className="danger" onClick={() => void removeRule(r)}>
                        Remove
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="hint" data-testid="noncurrent-default">
        Deployment default: noncurrent versions expire after {NONCURRENT_DEFAULT_DAYS} days and
        incomplete multipart uploads are aborted after {ABORT_INCOMPLETE_DEFAULT_DAYS} days, unless
        an Enabled rule covers them
        {coversNoncurrent ? ' (a rule here covers noncurrent versions)' : ''}. Operators change
        these defaults in node.yaml (noncurrentDefaultDays, abortIncompleteDefaultDays).
      </p>
      {canWrite && form === undefined && draft === undefined && (
        <div className="row">
          <button
            type="button"
            onClick={() => {
              setEditing(undefined)
              setForm(newRuleForm((rules?.length ?? 0) + 1))
            }}
            data-testid="lifecycle-add"
          >
            Add rule
          </button>
          <button type="button" onClick={() => setDraft(JSON.stringify(rules ?? [], null, 2))}>
            Edit as JSON
          </button>
        </div>
      )}
      {canWrite && form !== undefined && (
        <form
          className="stack rule-form"
          data-testid="lifecycle-form"
          onSubmit={(e) => {
            e.preventDefault()
            void saveForm(editing)
          }}
        >
          <div className="row">
            <label>
              Rule ID
              <input value={form.id} onChange={(e) => set({ id: e.target.value })} />
            </label>
            <label>
              Key prefix (empty: every object)
              <input value={form.prefix} onChange={(e) => set({ prefix: e.target.value })} />
            </label>
            <label className="inline">
              <input
                type="checkbox"
                checked={form.enabled}
                onChange={(e) => set({ enabled: e.target.checked })}
              />
              Enabled
            </label>
          </div>
          <div className="row">
            <label>
              Expire current versions after (days)
              <input
                type="number"
                min={1}
                value={form.expireDays}
                placeholder="never"
                onChange={(e) => set({ expireDays: e.target.value })}
              />
            </label>
            <label className="inline">
              <input
                type="checkbox"
                checked={form.expiredMarkers}
                onChange={(e) => set({ expiredMarkers: e.target.checked })}
              />
              Remove expired delete markers
            </label>
          </div>
          <div className="row">
            <label>
              Noncurrent versions expire after (days)
              <input
                type="number"
                min={1}
                value={form.noncurrentDays}
                placeholder={`default ${NONCURRENT_DEFAULT_DAYS}`}
                onChange={(e) => set({ noncurrentDays: e.target.value })}
              />
            </label>
            <label>
              Noncurrent versions to keep
              <input
                type="number"
                min={1}
                max={100}
                value={form.keepNewer}
                placeholder="none"
                onChange={(e) => set({ keepNewer: e.target.value })}
              />
            </label>
            <label>
              Abort incomplete uploads after (days)
              <input
                type="number"
                min={1}
                value={form.abortDays}
                placeholder={`default ${ABORT_INCOMPLETE_DEFAULT_DAYS}`}
                onChange={(e) => set({ abortDays: e.target.value })}
              />
            </label>
          </div>
          <p className="hint">
            A new rule starts from the deployment defaults ({NONCURRENT_DEFAULT_DAYS} days for
            noncurrent versions and incomplete uploads). Left empty, the defaults still apply to
            what this rule covers.
          </p>
          {checked && checked.problems.length > 0 && (
            <ul className="error" data-testid="lifecycle-problems">
              {checked.problems.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          )}
          <div className="row">
            <button type="submit" disabled={!checked?.rule} data-testid="lifecycle-save">
              Save rule
            </button>
            <button type="button" onClick={() => setForm(undefined)}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {canWrite && draft !== undefined && (
        <>
          <textarea
            className="code"
            rows={10}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            spellCheck={false}
            aria-label="Lifecycle rules"
          />
          {draftProblem && <p className="error">{draftProblem}</p>}
          <div className="row">
            <button
              type="button"
              disabled={draftProblem !== undefined}
              onClick={() => void saveDraft()}
            >
              Save rules
            </button>
            <button type="button" onClick={() => setDraft(undefined)}>
              Cancel
            </button>
            <span className="hint">An empty list removes the configuration.</span>
          </div>
        </>
      )}
      {notice && <p className="notice">{notice}</p>}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </div>
  )
}

function describeRule(r: LifecycleRule): string {
  const out: string[] = []
  if (r.Expiration?.Days !== undefined) out.push(`expire after ${r.Expiration.Days} days`)
  if (r.Expiration?.Date) out.push(`expire on ${new Date(r.Expiration.Date).toISOString()}`)
  if (r.Expiration?.ExpiredObjectDeleteMarker) out.push('remove expired delete markers')
  if (r.NoncurrentVersionExpiration?.NoncurrentDays !== undefined)
    out.push(`noncurrent versions after ${r.NoncurrentVersionExpiration.NoncurrentDays} days`)
  if (r.AbortIncompleteMultipartUpload?.DaysAfterInitiation !== undefined)
    out.push(`abort uploads after ${r.AbortIncompleteMultipartUpload.DaysAfterInitiation} days`)
  return out.join('; ') || '–'
}

/** Problems of a policy document that the gateway would refuse, found before sending it. */
export function checkPolicy(text: string, maxBytes: number): string[] {
  const problems: string[] = []
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return [`Not valid JSON: ${(err as Error).message}`]
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return ['A policy is a JSON object']
  const size = new TextEncoder().encode(JSON.stringify(doc)).byteLength
  if (size > maxBytes)
    problems.push(`The policy is ${size} bytes minified; the limit is ${maxBytes}`)
  const d = doc as { Version?: unknown; Statement?: unknown }
  if (d.Version !== '2012-10-17' && d.Version !== '2008-10-17')
    problems.push('Version must be "2012-10-17"')
  const statements = Array.isArray(d.Statement) ? d.Statement : d.Statement ? [d.Statement] : []
  if (statements.length === 0) problems.push('Statement must hold at least one statement')
  statements.forEach((s: unknown, i: number) => {
    const st = s as Record<string, unknown>
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny')
      problems.push(`Statement ${i + 1}: Effect must be "Allow" or "Deny"`)
    if (st.Action === undefined && st.NotAction === undefined)
      problems.push(`Statement ${i + 1}: give Action or NotAction`)
    if (st.Principal === undefined && st.NotPrincipal === undefined)
      problems.push(`Statement ${i + 1}: a bucket policy names a Principal`)
    if (st.Resource === undefined && st.NotResource === undefined)
      problems.push(`Statement ${i + 1}: give Resource or NotResource`)
  })
  return problems
}

function PolicyEditor({ bucket, canWrite }: { bucket: string; canWrite: boolean }) {
  const { s3, me } = useSession()
  const maxBytes = me.limits?.policyMaxBytes ?? 2048
  const [text, setText] = useState('')
  const [stored, setStored] = useState<string | undefined>()
  const [loaded, setLoaded] = useState(false)
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      const out = await s3.send(new GetBucketPolicyCommand({ Bucket: bucket }))
      const pretty = JSON.stringify(JSON.parse(out.Policy ?? '{}'), null, 2)
      setStored(pretty)
      setText(pretty)
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchBucketPolicy') {
        setStored(undefined)
        setText('')
      } else setError(errorText(err))
    }
    setLoaded(true)
  }, [s3, bucket])
  useEffect(() => {
    void load()
  }, [load])
  const problems = text.trim() === '' ? [] : checkPolicy(text, maxBytes)
  async function save() {
    setError(undefined)
    try {
      await s3.send(
        new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(JSON.parse(text)) }),
      )
      setNotice('Policy saved')
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  async function remove() {
    await confirmThen(`Remove the policy of ${bucket}?`, setError, async () => {
      await s3.send(new DeleteBucketPolicyCommand({ Bucket: bucket }))
      setNotice('Policy removed')
      await load()
    })
  }
  return (
    <div className="card">
      <h3>Bucket policy</h3>
      <p className="hint">
        At most {maxBytes} bytes of minified JSON. A policy that does not allow a principal denies
        it (default deny); owners, admins and the project&apos;s project-admins can always change
        it.
      </p>
      <textarea
        className="code"
        rows={14}
        value={text}
        // Read-only until loaded, so an edit is never overwritten by the stored policy.
        readOnly={!canWrite || !loaded}
        onChange={(e) => setText(e.target.value)}
        placeholder={stored === undefined ? 'No policy. Write one here.' : ''}
        spellCheck={false}
        aria-label="Bucket policy"
        data-testid="policy-editor"
      />
      {problems.length > 0 && (
        <ul className="error" data-testid="policy-problems">
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      {canWrite && (
        <div className="row">
          <button
            type="button"
            disabled={text.trim() === '' || problems.length > 0 || text === stored}
            onClick={() => void save()}
            data-testid="policy-save"
          >
            Save policy
          </button>
          {stored !== undefined && (
            <button type="button" className="danger" onClick={() => void remove()}>
              Remove policy
            </button>
          )}
        </div>
      )}
      {notice && <p className="notice">{notice}</p>}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </div>
  )
}

const BLOCK_FLAGS = [
  ['BlockPublicAcls', 'Block public ACLs'],
  ['IgnorePublicAcls', 'Ignore public ACLs'],
  ['BlockPublicPolicy', 'Block public bucket policies'],
  ['RestrictPublicBuckets', 'Restrict public buckets'],
] as const

type BlockConfig = Partial<Record<(typeof BLOCK_FLAGS)[number][0], boolean>>

export function PublicAccessBlock({ bucket, canWrite }: { bucket: string; canWrite: boolean }) {
  const { s3 } = useSession()
  const [config, setConfig] = useState<BlockConfig | undefined>()
  const [error, setError] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      const out = await s3.send(new GetPublicAccessBlockCommand({ Bucket: bucket }))
      setConfig(out.PublicAccessBlockConfiguration ?? {})
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchPublicAccessBlockConfiguration') setConfig({})
      else setError(errorText(err))
    }
  }, [s3, bucket])
  useEffect(() => {
    void load()
  }, [load])
  async function toggle(flag: (typeof BLOCK_FLAGS)[number][0]) {
    if (!config) return
    try {
      await s3.send(
        new PutPublicAccessBlockCommand({
          Bucket: bucket,
          PublicAccessBlockConfiguration: { ...config, [flag]: !config[flag] },
        }),
      )
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <div className="card" data-testid="public-access-block">
      <h3>Public access block</h3>
      {config &&
        BLOCK_FLAGS.map(([flag, label]) => (
          <label className="inline" key={flag}>
            <input
              type="checkbox"
              checked={config[flag] ?? false}
              disabled={!canWrite}
              onChange={() => void toggle(flag)}
            />
            {label}
          </label>
        ))}
      {error && <p className="error">{error}</p>}
    </div>
  )
}

export function CorsEditor({ bucket, canWrite }: { bucket: string; canWrite: boolean }) {
  const { s3 } = useSession()
  const [text, setText] = useState('')
  const [loaded, setLoaded] = useState(false)
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      const out = await s3.send(new GetBucketCorsCommand({ Bucket: bucket }))
      setText(JSON.stringify(out.CORSRules ?? [], null, 2))
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchCORSConfiguration') setText('')
      else setError(errorText(err))
    }
    setLoaded(true)
  }, [s3, bucket])
  useEffect(() => {
    void load()
  }, [load])
  let problem: string | undefined
  let rules: CORSRule[] | undefined
  if (text.trim() !== '') {
    try {
      const parsed = JSON.parse(text) as unknown
      if (!Array.isArray(parsed)) problem = 'CORS rules are a JSON array of rules'
      else rules = parsed as CORSRule[]
    } catch (err) {
      problem = `Not valid JSON: ${(err as Error).message}`
    }
  }
  async function save() {
    try {
      if (rules === undefined || rules.length === 0)
        await s3.send(new DeleteBucketCorsCommand({ Bucket: bucket }))
      else
        await s3.send(
          new PutBucketCorsCommand({ Bucket: bucket, CORSConfiguration: { CORSRules: rules } }),
        )
      setNotice('CORS saved')
      setError(undefined)
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <div className="card" data-testid="cors">
      <h3>CORS</h3>
      <textarea
        className="code"
        rows={6}
        value={text}
        readOnly={!canWrite || !loaded}
        onChange={(e) => setText(e.target.value)}
        placeholder='[{"AllowedOrigins": ["https://app.example"], "AllowedMethods": ["GET"]}]'
        spellCheck={false}
        aria-label="CORS rules"
      />
      {problem && <p className="error">{problem}</p>}
      {canWrite && (
        <div className="row">
          <button type="button" disabled={problem !== undefined} onClick={() => void save()}>
            Save CORS
          </button>
          <span className="hint">An empty list removes the configuration.</span>
        </div>
      )}
      {notice && <p className="notice">{notice}</p>}
      {error && <p className="error">{error}</p>}
    </div>
  )
}

export function AclView({ bucket }: { bucket: string }) {
  const { s3 } = useSession()
  const [grants, setGrants] = useState<Grant[] | undefined>()
  const [owner, setOwner] = useState<string | undefined>()
  const [error, setError] = useState<string | undefined>()
  useEffect(() => {
    s3.send(new GetBucketAclCommand({ Bucket: bucket })).then(
      (out) => {
        setGrants(out.Grants ?? [])
        setOwner(out.Owner?.DisplayName ?? out.Owner?.ID)
      },
      (err: unknown) => setError(errorText(err)),
    )
  }, [s3, bucket])
  return (
    <div className="card" data-testid="acl">
      <h3>Access control list</h3>
      <p className="hint">
        Owner: {owner ?? '–'}. Access is decided by roles and policies; ACLs are shown for S3
        clients that read them.
      </p>
      {grants && (
        <table>
          <thead>
            <tr>
              <th>Grantee</th>
              <th>Permission</th>
            </tr>
          </thead>
          <tbody>
            {grants.map((g) => (
              <tr key={`${g.Grantee?.ID ?? g.Grantee?.URI ?? ''}-${g.Permission}`}>
                <td>{g.Grantee?.DisplayName ?? g.Grantee?.URI ?? g.Grantee?.ID ?? '–'}</td>
                <td>{g.Permission}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {error && <p className="error">{error}</p>}
    </div>
  )
}
