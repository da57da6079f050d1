// biome-ignore-all lint/suspicious/noTemplateCurlyInString: IAM policy variables are written ${key}
import t from 'tap'
import {
  type Decision,
  type EvalRequest,
  evaluatePolicy,
  matchWildcard,
  type ParseOptions,
  type Policy,
  PolicyError,
  type PolicyKind,
  parsePolicy,
} from '../src/iam/policy.ts'
import { rng } from './seeded-random.ts'

const SEED = Number(process.env.POLICY_SEED ?? 0x1a3)
const random = rng(SEED)
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!

const MAX = 2048
const ACCOUNT = '123456789012'
const ALICE = `arn:aws:iam::${ACCOUNT}:user/alice`
const BOB = `arn:aws:iam::${ACCOUNT}:user/bob`

function parse(doc: unknown, kind: PolicyKind = 'identity', extra: Partial<ParseOptions> = {}) {
  const text = typeof doc === 'string' ? doc : JSON.stringify(doc)
  return parsePolicy(text, { kind, maxBytes: MAX, ...extra })
}

/** Runs `fn` and gives the PolicyError it throws. */
function refusal(fn: () => unknown): PolicyError {
  try {
    fn()
  } catch (err) {
    if (err instanceof PolicyError) return err
    throw err
  }
  throw new Error('expected a PolicyError')
}

/** A 2012-10-17 identity policy with the given statements. */
function identity(...statements: Record<string, unknown>[]): Policy {
  return parse({ Version: '2012-10-17', Statement: statements })
}

const S3_ALL = { Effect: 'Allow', Action: 's3:*', Resource: '*' }

function request(over: Partial<EvalRequest> = {}): EvalRequest {
  return { action: 's3:GetObject', resource: 'arn:aws:s3:::photos/a.jpg', context: {}, ...over }
}

function verdict(policy: Policy, over: Partial<EvalRequest> = {}): Decision['verdict'] {
  return evaluatePolicy(policy, request(over)).verdict
}

/** Whether a policy holding only `Condition: { [op]: { [key]: values } }` allows the request. */
function holds(
  op: string,
  key: string,
  values: unknown,
  context: EvalRequest['context'],
  version = '2012-10-17',
): boolean {
  const p = parse({
    Version: version,
    Statement: { ...S3_ALL, Condition: { [op]: { [key]: values } } },
  })
  return verdict(p, { context }) === 'Allow'
}

t.test('validation: each malformed document is refused with an AWS-like reason', async (t) => {
  const ok = { Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/*' }
  const okB = { ...ok, Principal: '*' }
  const doc = (...st: unknown[]) => ({ Version: '2012-10-17', Statement: st })
  const withCond = (Condition: unknown) => doc({ ...ok, Condition })
  const cases: [string, unknown, PolicyKind, string][] = [
    ['not JSON', '{"Version": ', 'identity', 'This policy contains invalid Json'],
    ['an array', '[]', 'identity', "first byte must be '{'"],
    ['a string', '"policy"', 'identity', "first byte must be '{'"],
    ['null', 'null', 'identity', "first byte must be '{'"],
    ['unknown top field', { ...doc(ok), Foo: 1 }, 'identity', 'Unknown field Foo'],
    ['lower-case field', { version: '2012-10-17', Statement: [ok] }, 'identity', 'Unknown field'],
    ['bad version', { Version: '2013-01-01', Statement: ok }, 'identity', 'valid version string'],
    ['numeric version', { Version: 2012, Statement: ok }, 'identity', 'valid version string'],
    ['numeric Id', { ...doc(ok), Id: 7 }, 'identity', 'Policy Id must be a string'],
    ['no Statement', { Version: '2012-10-17' }, 'identity', 'Missing required field Statement'],
    ['empty Statement', doc(), 'identity', 'non-empty array'],
    ['string Statement', { Statement: 'Allow' }, 'identity', 'non-empty array'],
    ['number in Statement', doc(1), 'identity', 'Statement must be an object'],
    ['unknown statement field', doc({ ...ok, Actions: 'x' }), 'identity', 'Unknown field Actions'],
    ['numeric Sid', doc({ ...ok, Sid: 1 }), 'identity', 'Sid must be a string'],
    ['duplicate Sid', doc({ ...ok, Sid: 'a' }, { ...ok, Sid: 'a' }), 'identity', 'must be unique'],
    ['no Effect', doc({ Action: 's3:*', Resource: '*' }), 'identity', 'required field Effect'],
    ['lower-case Effect', doc({ ...ok, Effect: 'allow' }), 'identity', 'Invalid effect: allow'],
    ['identity Principal', doc(okB), 'identity', 'should not specify a principal'],
    [
      'session NotPrincipal',
      doc({ ...ok, NotPrincipal: '*' }),
      'session',
      'not specify a principal',
    ],
    ['bucket, no Principal', doc(ok), 'bucket', 'Missing required field Principal'],
    ['both principals', doc({ ...okB, NotPrincipal: '*' }), 'bucket', 'both Principal and Not'],
    ['Principal word', doc({ ...ok, Principal: 'everyone' }), 'bucket', 'Invalid principal'],
    ['Principal type', doc({ ...ok, Principal: { User: 'x' } }), 'bucket', 'Invalid principal'],
    ['Principal []', doc({ ...ok, Principal: { AWS: [] } }), 'bucket', 'Invalid principal'],
    ['Principal {}', doc({ ...ok, Principal: {} }), 'bucket', 'Invalid principal'],
    ['Principal number', doc({ ...ok, Principal: { AWS: 12 } }), 'bucket', 'Invalid principal'],
    ['no Action', doc({ Effect: 'Allow', Resource: '*' }), 'identity', 'required field Action'],
    ['both actions', doc({ ...ok, NotAction: 's3:Put*' }), 'identity', 'both Action and NotAction'],
    ['empty Action', doc({ ...ok, Action: [] }), 'identity', 'Policy has invalid action'],
    ['no service', doc({ ...ok, Action: 'GetObject' }), 'identity', 'Policy has invalid action'],
    ['other service', doc({ ...ok, Action: 'ec2:Run*' }), 'identity', 'Policy has invalid action'],
    ['bad character', doc({ ...ok, Action: 's3:Get-Object' }), 'identity', 'invalid action'],
    ['service case', doc({ ...ok, Action: 'S3:GetObject' }), 'identity', 'invalid action'],
    ['empty action name', doc({ ...ok, Action: 's3:' }), 'identity', 'invalid action'],
    ['number Action', doc({ ...ok, Action: [5] }), 'identity', 'invalid action'],
    ['IAM in bucket', doc({ ...okB, Action: 'iam:CreateUser' }), 'bucket', 'invalid action'],
    ['no Resource', doc({ Effect: 'Allow', Action: '*' }), 'identity', 'required field Resource'],
    ['both resources', doc({ ...ok, NotResource: '*' }), 'identity', 'both Resource and Not'],
    ['plain path', doc({ ...ok, Resource: 'photos/*' }), 'identity', 'invalid resource'],
    ['five parts', doc({ ...ok, Resource: 'arn:aws:s3::photos' }), 'identity', 'invalid resource'],
    ['partition', doc({ ...ok, Resource: 'arn:aws-cn:s3:::b' }), 'identity', 'invalid resource'],
    ['no resource part', doc({ ...ok, Resource: 'arn:aws:s3:::' }), 'identity', 'invalid resource'],
    ['empty Resource', doc({ ...ok, Resource: [] }), 'identity', 'invalid resource'],
    ['empty string', doc({ ...ok, Resource: [''] }), 'identity', 'invalid resource'],
    ['other bucket', doc({ ...okB, Resource: 'arn:aws:s3:::music/*' }), 'bucket', 'resource'],
    ['bucket prefix', doc({ ...okB, Resource: 'arn:aws:s3:::photos2' }), 'bucket', 'resource'],
    ['star in bucket', doc({ ...okB, Resource: '*' }), 'bucket', 'invalid resource'],
    ['IAM ARN in bucket', doc({ ...okB, Resource: ALICE }), 'bucket', 'invalid resource'],
    ['string Condition', withCond('x'), 'identity', 'Condition must be an object'],
    ['typo operator', withCond({ StringEqualz: {} }), 'identity', 'Condition type : StringEqualz'],
    ['NullIfExists', withCond({ NullIfExists: { 's3:prefix': 'true' } }), 'identity', 'type'],
    ['set prefix', withCond({ 'ForSomeValues:StringLike': {} }), 'identity', 'Condition type'],
    ['block string', withCond({ StringEquals: 'x' }), 'identity', 'must map condition keys'],
    ['empty block', withCond({ StringEquals: {} }), 'identity', 'must map condition keys'],
    ['unknown key', withCond({ StringEquals: { 'aws:Foo': 'x' } }), 'identity', 'condition key'],
    ['empty tag key', withCond({ StringEquals: { 'aws:RequestTag/': 'x' } }), 'identity', 'key'],
    ['bare iam:', withCond({ StringEquals: { 'iam:': 'x' } }), 'identity', 'condition key'],
    ['no values', withCond({ StringEquals: { 's3:prefix': [] } }), 'identity', 'Condition value'],
    ['null value', withCond({ StringEquals: { 's3:prefix': null } }), 'identity', 'value for'],
    ['object value', withCond({ StringEquals: { 's3:prefix': [{}] } }), 'identity', 'value for'],
    [
      'non-number',
      withCond({ NumericLessThan: { 's3:max-keys': [10, 'ten'] } }),
      'identity',
      'Invalid Condition value for NumericLessThan : ten',
    ],
    [
      'non-date',
      withCond({ DateLessThan: { 'aws:CurrentTime': 'tomorrow' } }),
      'identity',
      'value',
    ],
    ['Feb 30', withCond({ DateEquals: { 'aws:CurrentTime': '2024-02-30' } }), 'identity', 'value'],
    [
      'hour 24',
      withCond({ DateEquals: { 'aws:CurrentTime': '2024-01-01T24:00Z' } }),
      'identity',
      'v',
    ],
    [
      'Bool yes',
      withCond({ Bool: { 'aws:SecureTransport': 'yes' } }),
      'identity',
      'for Bool : yes',
    ],
    ['Null maybe', withCond({ Null: { 's3:prefix': 'maybe' } }), 'identity', 'for Null : maybe'],
    ['/33', withCond({ IpAddress: { 'aws:SourceIp': '10.0.0.0/33' } }), 'identity', '10.0.0.0/33'],
    ['bad IPv4', withCond({ NotIpAddress: { 'aws:SourceIp': '300.1.1.1' } }), 'identity', 'value'],
    ['/129', withCond({ IpAddress: { 'aws:SourceIp': '2001:db8::/129' } }), 'identity', 'value'],
    ['zone id', withCond({ IpAddress: { 'aws:SourceIp': 'fe80::1%eth0' } }), 'identity', 'value'],
    ['hostname', withCond({ IpAddress: { 'aws:SourceIp': 'example.com' } }), 'identity', 'value'],
  ]
  for (const [name, d, kind, reason] of cases) {
    const err = refusal(() => parse(d, kind, { bucket: kind === 'bucket' ? 'photos' : undefined }))
    t.match(err.reason, reason, name)
    t.equal(err.message, err.reason, `${name}: message is the reason`)
    t.equal(err.name, 'PolicyError')
    t.equal(err.tooLarge, false, `${name}: not a size refusal`)
  }
})

t.test('validation: what is accepted, and how it is normalized', async (t) => {
  const p = parse(
    `{
      "Id": "photos-policy",
      "Statement": {
        "Sid": "Read",
        "Effect": "Allow",
        "Principal": { "AWS": "${ALICE}", "CanonicalUser": ["abc"] },
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::photos/*",
        "Condition": {
          "NumericLessThanEquals": { "S3:Max-Keys": 100 },
          "Bool": { "aws:SecureTransport": true },
          "ForAnyValue:StringLikeIfExists": { "aws:TagKeys": ["team", "env*"] }
        }
      }
    }`,
    'bucket',
    { bucket: 'photos' },
  )
  // Without Version, the document is a 2008-10-17 one: allowed for bucket policies too.
  t.equal(p.version, '2008-10-17')
  t.equal(p.id, 'photos-policy')
  t.equal(p.text, JSON.stringify(JSON.parse(p.text)), 'text is minified JSON')
  t.equal(p.bytes, Buffer.byteLength(p.text))
  t.equal(p.statements.length, 1)
  const [st] = p.statements
  t.same(st, {
    sid: 'Read',
    effect: 'Allow',
    principal: { AWS: [ALICE], CanonicalUser: ['abc'] },
    action: ['s3:GetObject'],
    resource: ['arn:aws:s3:::photos/*'],
    conditions: [
      {
        operator: 'NumericLessThanEquals',
        base: 'NumericLessThanEquals',
        ifExists: false,
        key: 'S3:Max-Keys',
        values: ['100'],
      },
      {
        operator: 'Bool',
        base: 'Bool',
        ifExists: false,
        key: 'aws:SecureTransport',
        values: ['true'],
      },
      {
        operator: 'ForAnyValue:StringLikeIfExists',
        base: 'StringLike',
        ifExists: true,
        setOp: 'ForAnyValue',
        key: 'aws:TagKeys',
        values: ['team', 'env*'],
      },
    ],
  })
  t.notOk('setOp' in st!.conditions[0]!, 'no setOp key when there is no set prefix')

  // Identity policies without Version default to 2008-10-17 as well.
  t.equal(parse({ Statement: S3_ALL }).version, '2008-10-17')
  t.equal(parse({ Version: '2012-10-17', Statement: [S3_ALL] }, 'session').version, '2012-10-17')

  // Bucket resources: the bucket, its objects, and wildcards that cover the bucket name.
  for (const r of [
    'arn:aws:s3:::photos',
    'arn:aws:s3:::photos/*',
    'arn:aws:s3:::photos/a/b:c',
    'arn:aws:s3:::*',
    'arn:aws:s3:::pho*/x',
    'arn:aws:s3:::phot?s',
  ]) {
    const b = {
      Statement: { Effect: 'Deny', NotPrincipal: { AWS: ALICE }, Action: '*', Resource: r },
    }
    t.doesNotThrow(() => parse(b, 'bucket', { bucket: 'photos' }), r)
  }
  // Without a bucket to check against, any S3 ARN will do.
  const other = { Statement: { ...S3_ALL, Principal: '*', Resource: 'arn:aws:s3:::music' } }
  t.doesNotThrow(() => parse(other, 'bucket'))

  // Condition keys: case-insensitive, tag prefixes, anything under iam: and sts:.
  for (const key of [
    'AWS:SOURCEIP',
    'aws:PrincipalTag/team',
    's3:ExistingObjectTag/class',
    's3:RequestObjectTagKeys',
    'iam:PassedToService',
    'sts:ExternalId',
  ]) {
    t.ok(holds('StringLike', key, '*', { [key]: 'x' }), key)
  }

  // Actions: wildcards anywhere in the name, every supported service.
  for (const a of [
    '*',
    's3:*',
    's3:Get*',
    's3:?etObject',
    'iam:CreateUser',
    'sts:Assume*',
    'admin:*',
  ]) {
    t.doesNotThrow(() => identity({ Effect: 'Allow', Action: a, Resource: '*' }), a)
  }
  // Resources of other services, with empty region and account parts.
  t.doesNotThrow(() => identity({ Effect: 'Allow', Action: 'iam:*', Resource: `${ALICE}` }))
  t.doesNotThrow(() => identity({ Effect: 'Allow', Action: 'iam:*', Resource: 'arn:aws:iam::*:*' }))

  // Value forms accepted by the typed operators.
  const good: [string, unknown][] = [
    ['NumericEquals', ['1', -2, '3.5', '1e3', '+.5']],
    [
      'DateLessThan',
      ['2024-02-29', '2024-01-01T10:00Z', '2024-01-01T10:00:00.123+02:00', 1700000000],
    ],
    ['DateEquals', ['2024-01-01T10:00:00-0530', '1700000000.5']],
    ['Bool', [true, 'FALSE']],
    ['IpAddress', ['10.0.0.0/8', '192.168.1.1', '2001:db8::/32', '::1', '::ffff:10.0.0.0/104']],
    ['Null', [false, 'True']],
  ]
  for (const [op, values] of good) {
    const key = op.startsWith('Date') ? 'aws:CurrentTime' : 'aws:SourceIp'
    t.doesNotThrow(() => holds(op, key, values, {}), op)
  }
})

t.test('size limit: the minified document, exactly at the limit or one byte over', async (t) => {
  const build = (pad: number) => ({
    Version: '2012-10-17',
    Statement: [{ Sid: 'x'.repeat(pad), Effect: 'Allow', Action: 's3:*', Resource: '*' }],
  })
  const base = Buffer.byteLength(JSON.stringify(build(0)))
  const exact = build(MAX - base)
  t.equal(Buffer.byteLength(JSON.stringify(exact)), MAX)
  // Whitespace is not counted: the pretty-printed document is larger but still accepted.
  const pretty = JSON.stringify(exact, null, 8)
  t.ok(pretty.length > MAX)
  const p = parse(pretty)
  t.equal(p.bytes, MAX)
  t.equal(p.text, JSON.stringify(exact))

  const over = refusal(() => parse(build(MAX - base + 1)))
  t.equal(over.tooLarge, true)
  t.match(over.reason, 'Policy exceeds the maximum allowed document size')
  t.match(over.reason, `(${MAX + 1} > ${MAX} bytes)`)

  // Bytes, not characters: 'é' is two bytes of UTF-8.
  const wide = build(0)
  wide.Statement[0]!.Sid = 'é'.repeat(Math.floor((MAX - base) / 2)) + 'x'.repeat((MAX - base) % 2)
  t.equal(parse(wide).bytes, MAX)
  wide.Statement[0]!.Sid += 'é'
  t.equal(refusal(() => parse(wide)).tooLarge, true)

  // The size is checked before the content: an oversized, malformed document is "too large".
  const bad = { Version: 'nope', Junk: 'y'.repeat(MAX) }
  const err = refusal(() => parse(bad))
  t.equal(err.tooLarge, true)

  // Text beyond 16× the limit is refused before parsing, even when it is not JSON at all.
  const huge = `{${' '.repeat(16 * MAX)}`
  const hugeErr = refusal(() => parse(huge))
  t.equal(hugeErr.tooLarge, true)
  t.match(hugeErr.reason, 'maximum allowed document size')
  // ... while whitespace up to that bound is parsed and not counted.
  const padded = JSON.stringify(build(0))
  t.doesNotThrow(() => parse(padded + ' '.repeat(16 * MAX - padded.length)))
  t.equal(refusal(() => parse(padded + ' '.repeat(16 * MAX - padded.length + 1))).tooLarge, true)

  // A smaller limit from the options is honoured.
  const small = refusal(() => parse(build(0), 'identity', { maxBytes: base - 1 }))
  t.equal(small.tooLarge, true)
  t.match(small.reason, `(${base} > ${base - 1} bytes)`)
})

t.test('matchWildcard', async (t) => {
  const cases: [string, string, boolean, boolean][] = [
    ['', '', false, true],
    ['', 'a', false, false],
    ['*', '', false, true],
    ['*', 'anything/at:all', false, true],
    ['?', '', false, false],
    ['?', 'a', false, true],
    ['?', 'ab', false, false],
    ['a*', 'a', false, true],
    ['a*', 'ba', false, false],
    ['*a', 'ba', false, true],
    ['*a', 'ab', false, false],
    ['a*b*c', 'abc', false, true],
    ['a*b*c', 'axxbyyc', false, true],
    ['a*b*c', 'acb', false, false],
    ['a*b*c', 'abcb', false, false],
    ['a*b*c', 'abcbc', false, true],
    ['a?c', 'abc', false, true],
    ['a?c', 'ac', false, false],
    ['*?', '', false, false],
    ['*??*', 'ab', false, true],
    ['**', 'x', false, true],
    ['a**b', 'ab', false, true],
    ['ab*ba', 'aba', false, false],
    ['ab*ba', 'abba', false, true],
    ['s3:Get*', 's3:GetObject', false, true],
    ['s3:get*', 's3:GetObject', false, false],
    ['s3:get*', 's3:GetObject', true, true],
    ['S3:GETOBJECT', 's3:getobject', true, true],
    // Regex syntax means nothing.
    ['.*', 'abc', false, false],
    ['.*', '.abc', false, true],
    ['a+b', 'aab', false, false],
    ['a+b', 'a+b', false, true],
    ['[ab]', 'a', false, false],
    ['[ab]', '[ab]', false, true],
    ['^a$', 'a', false, false],
    ['(a|b)\\', '(a|b)\\', false, true],
    // '?' is one character, also outside the BMP.
    ['?', '😀', false, true],
    ['a?b', 'a😀b', false, true],
    ['??', '😀', false, false],
  ]
  for (const [pattern, value, ci, want] of cases) {
    t.equal(
      matchWildcard(pattern, value, ci),
      want,
      `${JSON.stringify(pattern)} ~ ${value} ci=${ci}`,
    )
  }

  // Pathological patterns: a backtracking matcher needs exponential time on these; the answer
  // arriving at all (and being right) is the test.
  const long = 'a'.repeat(20_000)
  t.equal(matchWildcard(`${'a*'.repeat(40)}b`, long, false), false)
  t.equal(matchWildcard(`${'a*'.repeat(40)}a`, long, false), true)
  t.equal(matchWildcard(`${'*?'.repeat(40)}b`, long, false), false)
  t.equal(matchWildcard('a*b*c', `${'ab'.repeat(5000)}c`, false), true)
  t.equal(matchWildcard('a*b*c', `${'ab'.repeat(5000)}`, false), false)
  t.equal(matchWildcard(`*${'a'.repeat(100)}b*`, long, false), false)
  t.equal(matchWildcard(`*${'a'.repeat(100)}b*`, `${long}b`, false), true)

  // Against a reference built from an escaped regex, on random small cases.
  const reference = (pattern: string, value: string): boolean => {
    const body = Array.from(pattern, (c) =>
      c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    ).join('')
    return new RegExp(`^${body}$`, 'su').test(value)
  }
  for (let i = 0; i < 3000; i++) {
    const pattern = Array.from({ length: Math.floor(random() * 8) }, () =>
      pick(['a', 'b', '*', '?']),
    ).join('')
    const value = Array.from({ length: Math.floor(random() * 10) }, () => pick(['a', 'b'])).join('')
    if (matchWildcard(pattern, value, false) !== reference(pattern, value)) {
      t.fail(`seed ${SEED}: ${pattern} ~ ${value}`)
      break
    }
  }
})

t.test('Action and NotAction', async (t) => {
  const p = identity({ Effect: 'Allow', Action: ['s3:Get*', 's3:ListBucket'], Resource: '*' })
  t.equal(verdict(p, { action: 's3:GetObject' }), 'Allow')
  t.equal(verdict(p, { action: 'S3:GETOBJECTTAGGING' }), 'Allow', 'case-insensitive')
  t.equal(verdict(p, { action: 's3:ListBucket' }), 'Allow')
  t.equal(verdict(p, { action: 's3:ListBucketVersions' }), 'NoMatch', 'no implicit trailing *')
  t.equal(verdict(p, { action: 's3:PutObject' }), 'NoMatch')
  t.equal(verdict(p, { action: 'iam:GetUser' }), 'NoMatch', 'the service is part of the match')

  const all = identity({ Effect: 'Allow', Action: '*', Resource: '*' })
  t.equal(verdict(all, { action: 'iam:CreateUser', resource: ALICE }), 'Allow')

  const not = identity({ Effect: 'Allow', NotAction: ['s3:Delete*', 'iam:*'], Resource: '*' })
  t.equal(verdict(not, { action: 's3:GetObject' }), 'Allow')
  t.equal(verdict(not, { action: 'sts:AssumeRole' }), 'Allow')
  t.equal(verdict(not, { action: 's3:DeleteObject' }), 'NoMatch')
  t.equal(verdict(not, { action: 'IAM:CreateUser' }), 'NoMatch')

  const q = identity({ Effect: 'Allow', Action: 's3:?etObject', Resource: '*' })
  t.equal(verdict(q, { action: 's3:GetObject' }), 'Allow')
  t.equal(verdict(q, { action: 's3:SetObject' }), 'Allow')
  t.equal(verdict(q, { action: 's3:GeetObject' }), 'NoMatch')
})

t.test('Resource and NotResource', async (t) => {
  const p = identity({
    Effect: 'Allow',
    Action: 's3:*',
    Resource: ['arn:aws:s3:::photos', 'arn:aws:s3:::photos/public/*'],
  })
  t.equal(verdict(p, { resource: 'arn:aws:s3:::photos' }), 'Allow')
  t.equal(verdict(p, { resource: 'arn:aws:s3:::photos/public/a.jpg' }), 'Allow')
  t.equal(verdict(p, { resource: 'arn:aws:s3:::photos/public/a/b/c' }), 'Allow', '* spans /')
  t.equal(verdict(p, { resource: 'arn:aws:s3:::photos/private/a.jpg' }), 'NoMatch')
  t.equal(verdict(p, { resource: 'arn:aws:s3:::photos/Public/a.jpg' }), 'NoMatch', 'case matters')
  t.equal(verdict(p, { resource: 'arn:aws:s3:::photos2' }), 'NoMatch')
  t.equal(verdict(p, { resource: '*' }), 'NoMatch')

  const star = identity({ Effect: 'Allow', Action: 'iam:ListUsers', Resource: '*' })
  t.equal(verdict(star, { action: 'iam:ListUsers', resource: '*' }), 'Allow')
  t.equal(verdict(star, { action: 'iam:ListUsers', resource: ALICE }), 'Allow')

  const not = identity({ Effect: 'Deny', Action: 's3:*', NotResource: 'arn:aws:s3:::photos/*' })
  t.equal(verdict(not, { resource: 'arn:aws:s3:::music/a.mp3' }), 'Deny')
  t.equal(verdict(not, { resource: 'arn:aws:s3:::photos' }), 'Deny', 'the bucket is not an object')
  t.equal(verdict(not, { resource: 'arn:aws:s3:::photos/a.jpg' }), 'NoMatch')

  const iam = identity({
    Effect: 'Allow',
    Action: 'iam:*',
    Resource: `arn:aws:iam::${ACCOUNT}:user/*`,
  })
  t.equal(verdict(iam, { action: 'iam:GetUser', resource: ALICE }), 'Allow')
  t.equal(
    verdict(iam, { action: 'iam:GetPolicy', resource: `arn:aws:iam::${ACCOUNT}:policy/p` }),
    'NoMatch',
  )
})

t.test('Principal and NotPrincipal in bucket policies', async (t) => {
  const bucket = (principal: Record<string, unknown>, effect = 'Allow'): Policy =>
    parse(
      {
        Version: '2012-10-17',
        Statement: {
          Effect: effect,
          ...principal,
          Action: 's3:*',
          Resource: 'arn:aws:s3:::photos/*',
        },
      },
      'bucket',
      { bucket: 'photos' },
    )
  const alice = { arns: [ALICE, `arn:aws:iam::${ACCOUNT}:root`, ACCOUNT], canonicalId: 'c-alice' }
  const bob = { arns: [BOB, `arn:aws:iam::${ACCOUNT}:root`, ACCOUNT], canonicalId: 'c-bob' }
  const stranger = { arns: ['arn:aws:iam::999999999999:user/eve', '999999999999'] }

  for (const p of [bucket({ Principal: '*' }), bucket({ Principal: { AWS: '*' } })]) {
    t.equal(verdict(p), 'Allow', 'anonymous')
    t.equal(verdict(p, { principal: alice }), 'Allow')
    t.equal(verdict(p, { principal: stranger }), 'Allow')
  }

  const onlyAlice = bucket({ Principal: { AWS: [ALICE] } })
  t.equal(verdict(onlyAlice, { principal: alice }), 'Allow')
  t.equal(verdict(onlyAlice, { principal: bob }), 'NoMatch')
  t.equal(verdict(onlyAlice), 'NoMatch', 'anonymous')

  for (const acct of [ACCOUNT, `arn:aws:iam::${ACCOUNT}:root`]) {
    const p = bucket({ Principal: { AWS: acct } })
    t.equal(verdict(p, { principal: alice }), 'Allow', acct)
    t.equal(verdict(p, { principal: bob }), 'Allow', acct)
    t.equal(verdict(p, { principal: stranger }), 'NoMatch', acct)
    t.equal(verdict(p), 'NoMatch', `${acct}: anonymous`)
  }

  const users = bucket({ Principal: { AWS: `arn:aws:iam::${ACCOUNT}:user/a*` } })
  t.equal(verdict(users, { principal: alice }), 'Allow')
  t.equal(verdict(users, { principal: bob }), 'NoMatch')

  const canonical = bucket({ Principal: { CanonicalUser: 'c-bob' } })
  t.equal(verdict(canonical, { principal: bob }), 'Allow')
  t.equal(verdict(canonical, { principal: alice }), 'NoMatch')
  t.equal(verdict(canonical), 'NoMatch')

  const service = bucket({ Principal: { Service: 'logging.s3.amazonaws.com' } })
  t.equal(verdict(service, { principal: { arns: ['logging.s3.amazonaws.com'] } }), 'Allow')
  t.equal(verdict(service, { principal: alice }), 'NoMatch')

  // Deny everyone but alice: bob and the anonymous are denied, alice is left alone.
  const notAlice = bucket({ NotPrincipal: { AWS: ALICE } }, 'Deny')
  t.equal(verdict(notAlice, { principal: bob }), 'Deny')
  t.equal(verdict(notAlice), 'Deny')
  t.equal(verdict(notAlice, { principal: alice }), 'NoMatch')
  const notAnyone = bucket({ NotPrincipal: '*' }, 'Deny')
  t.equal(verdict(notAnyone), 'NoMatch')
  t.equal(verdict(notAnyone, { principal: bob }), 'NoMatch')
})

t.test('String operators', async (t) => {
  const k = 's3:prefix'
  t.ok(holds('StringEquals', k, 'home/', { [k]: 'home/' }))
  t.notOk(holds('StringEquals', k, 'home/', { [k]: 'Home/' }))
  t.ok(holds('StringEquals', k, ['a', 'home/'], { [k]: 'home/' }), 'values are OR')
  t.notOk(holds('StringEquals', k, 'home*', { [k]: 'home/' }), 'no wildcards in Equals')
  t.ok(holds('StringNotEquals', k, ['a', 'b'], { [k]: 'c' }))
  t.notOk(holds('StringNotEquals', k, ['a', 'b'], { [k]: 'b' }), 'matches one of them')
  t.ok(holds('StringEqualsIgnoreCase', k, 'HOME/', { [k]: 'home/' }))
  t.notOk(holds('StringEqualsIgnoreCase', k, 'HOME/', { [k]: 'home' }))
  t.ok(holds('StringNotEqualsIgnoreCase', k, 'HOME/', { [k]: 'work/' }))
  t.notOk(holds('StringNotEqualsIgnoreCase', k, 'HOME/', { [k]: 'home/' }))
  t.ok(holds('StringLike', k, 'home/*', { [k]: 'home/alice/' }))
  t.notOk(holds('StringLike', k, 'home/*', { [k]: 'Home/alice/' }), 'case-sensitive')
  t.ok(holds('StringLike', k, ['x', 'h?me'], { [k]: 'hame' }))
  t.notOk(holds('StringLike', k, 'home/*', { [k]: 'work/' }))
  t.ok(holds('StringNotLike', k, ['home/*', 'tmp/*'], { [k]: 'work/' }))
  t.notOk(holds('StringNotLike', k, ['home/*', 'tmp/*'], { [k]: 'tmp/x' }))
  // Keys are looked up case-insensitively, values compared as given.
  t.ok(holds('StringEquals', 'S3:PREFIX', 'v', { 's3:Prefix': 'v' }))
  // An empty string is a value.
  t.ok(holds('StringEquals', k, '', { [k]: '' }))
})

t.test('Numeric operators', async (t) => {
  const k = 's3:max-keys'
  const table: [string, number | string, string, boolean][] = [
    ['NumericEquals', 10, '10', true],
    ['NumericEquals', 10, '10.0', true],
    ['NumericEquals', '1e1', '10', true],
    ['NumericEquals', 10, '11', false],
    ['NumericEquals', 10, 'ten', false],
    ['NumericNotEquals', 10, '11', true],
    ['NumericNotEquals', 10, '10', false],
    ['NumericLessThan', 10, '9', true],
    ['NumericLessThan', 10, '10', false],
    ['NumericLessThanEquals', 10, '10', true],
    ['NumericLessThanEquals', 10, '11', false],
    ['NumericGreaterThan', 10, '11', true],
    ['NumericGreaterThan', 10, '10', false],
    ['NumericGreaterThanEquals', 10, '10', true],
    ['NumericGreaterThanEquals', 10, '9.5', false],
    ['NumericLessThan', '-1', '-2', true],
    ['NumericLessThan', 2, '', false],
  ]
  for (const [op, v, ctx, want] of table)
    t.equal(holds(op, k, v, { [k]: ctx }), want, `${op} ${v} ${ctx}`)
})

t.test('Date operators', async (t) => {
  const k = 'aws:CurrentTime'
  const now = '2024-06-01T12:00:00Z'
  const table: [string, unknown, string, boolean][] = [
    ['DateEquals', now, '2024-06-01T12:00:00.000Z', true],
    ['DateEquals', now, '2024-06-01T14:00:00+02:00', true],
    ['DateEquals', now, '2024-06-01T07:00:00-0500', true],
    ['DateEquals', '2024-06-01T12:00:00', now, true],
    ['DateEquals', 1717243200, now, true],
    ['DateEquals', now, '1717243200', true],
    ['DateEquals', now, '2024-06-01T12:00:01Z', false],
    ['DateEquals', now, 'noon', false],
    ['DateNotEquals', now, '2024-06-01T12:00:01Z', true],
    ['DateNotEquals', now, '1717243200', false],
    ['DateLessThan', now, '2024-06-01T11:59:59Z', true],
    ['DateLessThan', now, now, false],
    ['DateLessThanEquals', now, now, true],
    ['DateLessThanEquals', now, '2024-06-02', false],
    ['DateGreaterThan', '2024-06-01', now, true],
    ['DateGreaterThan', now, now, false],
    ['DateGreaterThanEquals', now, now, true],
    ['DateGreaterThanEquals', now, '2024-05-31T23:59:59.999Z', false],
    ['DateLessThan', '2024-01-01', '2023-12-31T23:59:59.999Z', true],
  ]
  for (const [op, v, ctx, want] of table)
    t.equal(holds(op, k, v, { [k]: ctx }), want, `${op} ${v} ${ctx}`)
  t.ok(holds('DateLessThan', 'aws:EpochTime', 1717243200, { 'aws:EpochTime': '1717243199' }))
  t.ok(
    holds('DateLessThan', 'aws:TokenIssueTime', '2000-01-01', {
      'aws:TokenIssueTime': '1999-12-31',
    }),
  )
})

t.test('Bool, Binary and Null', async (t) => {
  const k = 'aws:SecureTransport'
  t.ok(holds('Bool', k, true, { [k]: 'true' }))
  t.ok(holds('Bool', k, 'true', { [k]: 'TRUE' }))
  t.notOk(holds('Bool', k, true, { [k]: 'false' }))
  t.ok(holds('Bool', k, false, { [k]: 'false' }))
  t.notOk(holds('Bool', k, false, {}), 'absent is not false')

  const b = 's3:x-amz-content-sha256'
  t.ok(holds('BinaryEquals', b, 'QUJD', { [b]: 'QUJD' }))
  t.notOk(holds('BinaryEquals', b, 'QUJD', { [b]: 'QUJE' }))

  const n = 'aws:MultiFactorAuthPresent'
  t.ok(holds('Null', n, true, {}))
  t.ok(holds('Null', n, true, { [n]: undefined }))
  t.ok(holds('Null', n, true, { 'aws:TagKeys': [] }))
  t.ok(holds('Null', 'aws:TagKeys', true, { 'aws:TagKeys': [] }), 'an empty list is absent')
  t.notOk(holds('Null', n, true, { [n]: 'false' }))
  t.ok(holds('Null', n, false, { [n]: 'false' }))
  t.notOk(holds('Null', n, false, {}))
  t.ok(holds('Null', n, 'FALSE', { [n]: '' }), 'an empty string is present')
})

t.test('IpAddress and NotIpAddress: IPv4, IPv6, mapped addresses', async (t) => {
  const k = 'aws:SourceIp'
  const table: [string, unknown, string, boolean][] = [
    ['IpAddress', '10.0.0.0/8', '10.1.2.3', true],
    ['IpAddress', '10.0.0.0/8', '11.1.2.3', false],
    ['IpAddress', '10.0.0.0/8', '::ffff:10.1.2.3', true],
    ['IpAddress', '10.0.0.0/8', '::ffff:a01:203', true],
    ['IpAddress', '10.0.0.0/8', '::FFFF:11.0.0.1', false],
    ['IpAddress', '127.0.0.1', '127.0.0.1', true],
    ['IpAddress', '127.0.0.1', '::ffff:127.0.0.1', true],
    ['IpAddress', '127.0.0.1', '127.0.0.2', false],
    ['IpAddress', '192.168.1.77/24', '192.168.1.200', true],
    ['IpAddress', '0.0.0.0/0', '8.8.8.8', true],
    ['IpAddress', ['203.0.113.0/24', '2001:db8::/32'], '2001:db8:1::5', true],
    ['IpAddress', ['203.0.113.0/24', '2001:db8::/32'], '2001:db9::5', false],
    ['IpAddress', ['203.0.113.0/24', '2001:db8::/32'], '203.0.113.9', true],
    ['IpAddress', '2001:DB8::/32', '2001:0db8:0000::1', true],
    ['IpAddress', '::1', '::1', true],
    ['IpAddress', '::1', '127.0.0.1', false],
    ['IpAddress', '::ffff:0:0/96', '1.2.3.4', true],
    ['IpAddress', '10.0.0.0/8', 'not-an-ip', false],
    ['IpAddress', '10.0.0.0/8', '10.0.0.1%eth0', false],
    ['NotIpAddress', '10.0.0.0/8', '11.0.0.1', true],
    ['NotIpAddress', '10.0.0.0/8', '10.0.0.1', false],
    ['NotIpAddress', '10.0.0.0/8', '::ffff:10.0.0.1', false],
    ['NotIpAddress', ['10.0.0.0/8', 'fd00::/8'], 'fd12::1', false],
    ['NotIpAddress', ['10.0.0.0/8', 'fd00::/8'], 'fe80::1', true],
  ]
  for (const [op, v, ip, want] of table)
    t.equal(holds(op, k, v, { [k]: ip }), want, `${op} ${v} ${ip}`)
  // Evaluating the same parsed policy twice (the block list is cached) gives the same answer.
  const p = identity({ ...S3_ALL, Condition: { IpAddress: { [k]: '10.0.0.0/8' } } })
  t.equal(verdict(p, { context: { [k]: '10.0.0.1' } }), 'Allow')
  t.equal(verdict(p, { context: { [k]: '11.0.0.1' } }), 'NoMatch')
  t.equal(verdict(p, { context: { [k]: '10.0.0.1' } }), 'Allow')
})

t.test('ARN operators', async (t) => {
  const k = 'aws:PrincipalArn'
  const table: [string, unknown, string, boolean][] = [
    ['ArnEquals', ALICE, ALICE, true],
    ['ArnEquals', ALICE, BOB, false],
    ['ArnEquals', `arn:aws:iam::${ACCOUNT}:user/*`, BOB, true],
    ['ArnLike', `arn:aws:iam::*:user/a*`, ALICE, true],
    ['ArnLike', `arn:aws:iam::*:user/a*`, BOB, false],
    ['ArnLike', `arn:aws:iam::${ACCOUNT}:user/ALICE`, ALICE, false],
    // A wildcard in one part cannot run into the next: the account part is not 'user/…'.
    ['ArnLike', 'arn:aws:iam::*', ALICE, false],
    ['ArnLike', 'arn:aws:iam:*:*:*', ALICE, true],
    ['ArnLike', 'arn:aws:*:*:*:*', 'arn:aws:s3:::photos/a:b', true],
    ['ArnLike', 'arn:aws:s3:::photos/*', 'arn:aws:s3:::photos/a:b', true],
    ['ArnLike', 'arn:aws:iam::1234567890??:user/alice', ALICE, true],
    ['ArnLike', ALICE, 'not an arn', false],
    ['ArnLike', 'arn:aws:iam::*', 'arn:aws:iam::*', false],
    ['ArnLike', '*', ALICE, true],
    ['ArnLike', '*', 'not an arn', true],
    ['ArnLike', 'arn:*', ALICE, false],
    ['ArnNotEquals', ALICE, BOB, true],
    ['ArnNotEquals', ALICE, ALICE, false],
    ['ArnNotLike', 'arn:aws:iam::*:user/b*', ALICE, true],
    ['ArnNotLike', 'arn:aws:iam::*:user/b*', BOB, false],
  ]
  for (const [op, v, arn, want] of table)
    t.equal(holds(op, k, v, { [k]: arn }), want, `${op} ${v} ${arn}`)
})

t.test('absent keys, IfExists, and several conditions', async (t) => {
  const k = 's3:prefix'
  // An absent key fails every operator, the negated ones too.
  for (const op of ['StringEquals', 'StringNotEquals', 'StringNotLike', 'ArnNotEquals']) {
    t.notOk(holds(op, k, 'x', {}), `${op} on an absent key`)
    t.ok(holds(`${op}IfExists`, k, 'x', {}), `${op}IfExists on an absent key`)
  }
  t.notOk(holds('NumericNotEquals', 's3:max-keys', 1, {}))
  t.notOk(holds('NotIpAddress', 'aws:SourceIp', '10.0.0.0/8', {}))
  t.ok(holds('NotIpAddressIfExists', 'aws:SourceIp', '10.0.0.0/8', {}))
  // IfExists changes nothing when the key is there.
  t.ok(holds('StringEqualsIfExists', k, 'x', { [k]: 'x' }))
  t.notOk(holds('StringEqualsIfExists', k, 'x', { [k]: 'y' }))
  t.notOk(holds('NumericLessThanIfExists', 's3:max-keys', 10, { 's3:max-keys': '20' }))
  t.ok(holds('DateLessThanIfExists', 'aws:CurrentTime', '2030-01-01', {}))

  // Keys in one block, and blocks: all must hold.
  const p = identity({
    ...S3_ALL,
    Condition: {
      StringEquals: { 's3:prefix': 'home/', 's3:delimiter': '/' },
      Bool: { 'aws:SecureTransport': 'true' },
    },
  })
  const full = { 's3:prefix': 'home/', 's3:delimiter': '/', 'aws:SecureTransport': 'true' }
  t.equal(verdict(p, { context: full }), 'Allow')
  t.equal(verdict(p, { context: { ...full, 's3:delimiter': '-' } }), 'NoMatch')
  t.equal(verdict(p, { context: { ...full, 'aws:SecureTransport': 'false' } }), 'NoMatch')
  t.equal(verdict(p, { context: { ...full, 's3:prefix': undefined } }), 'NoMatch')
})

t.test('ForAnyValue, ForAllValues, multi-valued keys', async (t) => {
  const k = 'aws:TagKeys'
  t.ok(holds('ForAnyValue:StringEquals', k, ['env', 'team'], { [k]: ['team', 'other'] }))
  t.notOk(holds('ForAnyValue:StringEquals', k, ['env', 'team'], { [k]: ['x', 'y'] }))
  t.notOk(holds('ForAnyValue:StringEquals', k, ['env'], {}), 'absent: no value to satisfy it')
  t.ok(holds('ForAllValues:StringEquals', k, ['env', 'team'], { [k]: ['team', 'env'] }))
  t.notOk(holds('ForAllValues:StringEquals', k, ['env', 'team'], { [k]: ['team', 'other'] }))
  t.ok(holds('ForAllValues:StringEquals', k, ['env'], {}), 'absent: vacuously true')
  t.ok(holds('ForAllValues:StringEquals', k, ['env'], { [k]: [] }), 'empty: vacuously true')
  t.ok(holds('ForAllValues:StringLike', k, ['team-*'], { [k]: ['team-a', 'team-b'] }))
  t.notOk(holds('ForAllValues:StringLike', k, ['team-*'], { [k]: ['team-a', 'env'] }))
  // Negated operators under a set prefix: "no value matches", per context value.
  t.ok(holds('ForAllValues:StringNotEquals', k, ['secret'], { [k]: ['a', 'b'] }))
  t.notOk(holds('ForAllValues:StringNotEquals', k, ['secret'], { [k]: ['a', 'secret'] }))
  t.ok(holds('ForAnyValue:StringNotEquals', k, ['secret'], { [k]: ['a', 'secret'] }))
  t.notOk(holds('ForAnyValue:StringNotEquals', k, ['secret'], { [k]: ['secret'] }))
  // Without a set prefix a multi-valued key behaves like ForAnyValue.
  t.ok(holds('StringEquals', k, 'team', { [k]: ['x', 'team'] }))
  t.notOk(holds('StringEquals', k, 'team', { [k]: ['x', 'y'] }))
  t.ok(holds('ForAnyValue:NumericLessThan', 's3:max-keys', 5, { 's3:max-keys': ['9', '3'] }))
  t.notOk(holds('ForAllValues:NumericLessThan', 's3:max-keys', 5, { 's3:max-keys': ['9', '3'] }))
  t.ok(
    holds('ForAnyValue:IpAddress', 'aws:SourceIp', '10.0.0.0/8', {
      'aws:SourceIp': ['1.1.1.1', '10.0.0.1'],
    }),
  )
  t.ok(holds('ForAllValues:StringEqualsIfExists', k, 'a', {}))
})

t.test('policy variables', async (t) => {
  const home = identity({
    Effect: 'Allow',
    Action: 's3:*',
    Resource: 'arn:aws:s3:::photos/home/${aws:username}/*',
  })
  const as = (user: string | undefined, key: string) =>
    verdict(home, { resource: `arn:aws:s3:::photos/${key}`, context: { 'aws:username': user } })
  t.equal(as('alice', 'home/alice/a.jpg'), 'Allow')
  t.equal(as('alice', 'home/bob/a.jpg'), 'NoMatch')
  t.equal(as('bob', 'home/bob/a.jpg'), 'Allow')
  t.equal(as('Alice', 'home/alice/a.jpg'), 'NoMatch', 'the value is case-sensitive in a Resource')
  // A username with wildcard characters is literal: '*' does not reach other homes.
  t.equal(as('*', 'home/bob/a.jpg'), 'NoMatch')
  t.equal(as('*', 'home/*/a.jpg'), 'Allow')
  t.equal(as('b?b', 'home/bob/a.jpg'), 'NoMatch')
  t.equal(as('b?b', 'home/b?b/a.jpg'), 'Allow')
  // No value and no default: the Resource matches nothing, literal text included.
  t.equal(as(undefined, 'home/${aws:username}/a.jpg'), 'NoMatch')
  t.equal(as(undefined, 'home//a.jpg'), 'NoMatch')
  // Context keys are found whatever their case.
  t.equal(
    verdict(home, { resource: 'arn:aws:s3:::photos/home/al/x', context: { 'AWS:UserName': 'al' } }),
    'Allow',
  )
  // Several values: which one would be meant is unknowable, so nothing matches.
  t.equal(
    verdict(home, {
      resource: 'arn:aws:s3:::photos/home/al/x',
      context: { 'aws:username': ['al', 'b'] },
    }),
    'NoMatch',
  )

  // Version 2008-10-17: no variables, the text is literal (and '*' still a wildcard).
  const old = parse({
    Version: '2008-10-17',
    Statement: {
      Effect: 'Allow',
      Action: 's3:*',
      Resource: 'arn:aws:s3:::photos/home/${aws:username}/*',
    },
  })
  const ctx = { 'aws:username': 'alice' }
  t.equal(verdict(old, { resource: 'arn:aws:s3:::photos/home/alice/a', context: ctx }), 'NoMatch')
  t.equal(
    verdict(old, { resource: 'arn:aws:s3:::photos/home/${aws:username}/a', context: ctx }),
    'Allow',
  )

  // Defaults, the escapes, and text that only looks like a variable.
  const def = identity({
    Effect: 'Allow',
    Action: 's3:*',
    Resource: "arn:aws:s3:::photos/${aws:PrincipalTag/team, 'shared'}/*",
  })
  t.equal(verdict(def, { resource: 'arn:aws:s3:::photos/shared/x' }), 'Allow')
  t.equal(verdict(def, { resource: 'arn:aws:s3:::photos/red/x' }), 'NoMatch')
  const red = { 'aws:PrincipalTag/team': 'red' }
  t.equal(verdict(def, { resource: 'arn:aws:s3:::photos/red/x', context: red }), 'Allow')
  t.equal(verdict(def, { resource: 'arn:aws:s3:::photos/shared/x', context: red }), 'NoMatch')

  const esc = identity({
    Effect: 'Allow',
    Action: 's3:*',
    Resource: 'arn:aws:s3:::photos/${*}${?}${$}',
  })
  t.equal(verdict(esc, { resource: 'arn:aws:s3:::photos/*?$' }), 'Allow')
  t.equal(verdict(esc, { resource: 'arn:aws:s3:::photos/ab$' }), 'NoMatch', '${*} is no wildcard')
  const odd = identity({
    Effect: 'Allow',
    Action: 's3:*',
    Resource: 'arn:aws:s3:::photos/${a b}/${x',
  })
  t.equal(verdict(odd, { resource: 'arn:aws:s3:::photos/${a b}/${x' }), 'Allow')

  // In condition values, with String and ARN operators.
  t.ok(
    holds('StringLike', 's3:prefix', 'home/${aws:username}/*', {
      's3:prefix': 'home/al/x',
      'aws:username': 'al',
    }),
  )
  t.notOk(
    holds('StringLike', 's3:prefix', 'home/${aws:username}/*', {
      's3:prefix': 'home/b/x',
      'aws:username': '*',
    }),
  )
  t.ok(
    holds('StringEquals', 's3:prefix', 'home/${aws:username}/', {
      's3:prefix': 'home/al/',
      'aws:username': 'al',
    }),
  )
  t.notOk(
    holds('StringEquals', 's3:prefix', 'home/${aws:username}/', {
      's3:prefix': 'home/${aws:username}/',
    }),
  )
  t.ok(holds('StringEquals', 's3:prefix', "${aws:username, 'nobody'}", { 's3:prefix': 'nobody' }))
  t.ok(
    holds('StringEqualsIgnoreCase', 's3:prefix', '${aws:username}', {
      's3:prefix': 'AL',
      'aws:username': 'al',
    }),
  )
  t.ok(
    holds('ArnEquals', 'aws:PrincipalArn', 'arn:aws:iam::*:user/${aws:username}', {
      'aws:PrincipalArn': ALICE,
      'aws:username': 'alice',
    }),
  )
  // A value that cannot be expanded matches nothing, so the negated operator holds: a Deny
  // "unless the prefix is your home" still denies a caller without a username.
  t.ok(holds('StringNotLike', 's3:prefix', 'home/${aws:username}/*', { 's3:prefix': 'home/x/' }))
  // Version 2008-10-17 conditions compare the text as written.
  t.ok(
    holds(
      'StringEquals',
      's3:prefix',
      '${aws:username}',
      { 's3:prefix': '${aws:username}', 'aws:username': 'al' },
      '2008-10-17',
    ),
  )
})

t.test('Deny wins, and the deciding statement is reported', async (t) => {
  const p = identity(
    { Sid: 'ReadAll', Effect: 'Allow', Action: 's3:Get*', Resource: '*' },
    { Effect: 'Allow', Action: 's3:*', Resource: 'arn:aws:s3:::photos/*' },
    { Effect: 'Deny', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/secret/*' },
    { Sid: 'NoDelete', Effect: 'Deny', Action: 's3:Delete*', Resource: '*' },
  )
  t.same(evaluatePolicy(p, request()), { verdict: 'Allow', statement: 'ReadAll' })
  t.same(evaluatePolicy(p, request({ action: 's3:PutObject' })), {
    verdict: 'Allow',
    statement: 'Statement[1]',
  })
  t.same(evaluatePolicy(p, request({ resource: 'arn:aws:s3:::photos/secret/x' })), {
    verdict: 'Deny',
    statement: 'Statement[2]',
  })
  t.same(evaluatePolicy(p, request({ action: 's3:DeleteObject' })), {
    verdict: 'Deny',
    statement: 'NoDelete',
  })
  t.same(evaluatePolicy(p, request({ action: 'iam:GetUser', resource: ALICE })), {
    verdict: 'NoMatch',
  })

  // A Deny after the Allow still wins; a Deny whose condition fails does not.
  const q = identity(S3_ALL, {
    Sid: 'TLS',
    Effect: 'Deny',
    Action: '*',
    Resource: '*',
    Condition: { Bool: { 'aws:SecureTransport': false } },
  })
  t.same(evaluatePolicy(q, request({ context: { 'aws:SecureTransport': 'false' } })), {
    verdict: 'Deny',
    statement: 'TLS',
  })
  t.same(evaluatePolicy(q, request({ context: { 'aws:SecureTransport': 'true' } })), {
    verdict: 'Allow',
    statement: 'Statement[0]',
  })
  // An absent key makes the Bool condition false: the Deny does not apply.
  t.equal(verdict(q), 'Allow')

  // The typical bucket policy: public read, except from outside the office network.
  const b = parse(
    {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'Public',
          Effect: 'Allow',
          Principal: '*',
          Action: 's3:GetObject',
          Resource: 'arn:aws:s3:::photos/*',
        },
        {
          Sid: 'Office',
          Effect: 'Deny',
          Principal: { AWS: '*' },
          Action: 's3:*',
          Resource: ['arn:aws:s3:::photos', 'arn:aws:s3:::photos/*'],
          Condition: { NotIpAddress: { 'aws:SourceIp': ['192.0.2.0/24', '2001:db8::/32'] } },
        },
      ],
    },
    'bucket',
    { bucket: 'photos' },
  )
  t.same(evaluatePolicy(b, request({ context: { 'aws:SourceIp': '192.0.2.10' } })), {
    verdict: 'Allow',
    statement: 'Public',
  })
  t.same(evaluatePolicy(b, request({ context: { 'aws:SourceIp': '198.51.100.1' } })), {
    verdict: 'Deny',
    statement: 'Office',
  })
  t.same(evaluatePolicy(b, request({ context: { 'aws:SourceIp': '::ffff:192.0.2.10' } })), {
    verdict: 'Allow',
    statement: 'Public',
  })
})

t.test('ACL and ownership condition keys are known and evaluated', async (t) => {
  const grantRead = 'uri=http://acs.amazonaws.com/groups/global/AllUsers'
  for (const key of [
    's3:x-amz-grant-read',
    's3:x-amz-grant-write',
    's3:x-amz-grant-read-acp',
    's3:x-amz-grant-write-acp',
    's3:x-amz-grant-full-control',
    's3:x-amz-object-ownership',
  ]) {
    t.ok(holds('StringEquals', key, 'x', { [key]: 'x' }), `${key} is accepted and matched`)
    t.notOk(holds('StringEquals', key, 'x', { [key]: 'y' }), `${key} compares its value`)
  }
  // The common guard against public grants: deny a PUT that carries a public read grant.
  const deny = parse({
    Version: '2012-10-17',
    Statement: [
      S3_ALL,
      {
        Effect: 'Deny',
        Action: 's3:PutObject',
        Resource: '*',
        Condition: { StringLike: { 's3:x-amz-grant-read': '*AllUsers*' } },
      },
    ],
  })
  t.equal(
    verdict(deny, { action: 's3:PutObject', context: { 's3:x-amz-grant-read': grantRead } }),
    'Deny',
  )
  t.equal(verdict(deny, { action: 's3:PutObject' }), 'Allow', 'no grant header, no deny')
})
