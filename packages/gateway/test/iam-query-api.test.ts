/**
 * The pure parts of the IAM/STS query layer: error and response documents, times, policy
 * document encoding, parameter checks and list paging. The actions themselves run against a
 * real cluster with the aws CLI (test/iam-cli.test.ts).
 */
import { XMLParser } from 'fast-xml-parser'
import t from 'tap'
import { IamError } from '../src/iam/operations.ts'
import {
  ACCESS_KEY_ID,
  accountOfArn,
  checkQueryAction,
  decodeMarker,
  encodeMarker,
  encodePolicyDocument,
  IAM_XMLNS,
  isoSeconds,
  MARKER,
  PATH,
  POLICY_DOCUMENT,
  POLICY_PATH,
  paginate,
  QUERY_ACTIONS,
  QueryParams,
  queryError,
  queryErrorStatus,
  queryErrorXml,
  queryResponseXml,
  ROLE_SESSION_NAME,
  STS_XMLNS,
  USER_NAME,
} from '../src/iam/query-api.ts'

const reader = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: true,
})

type Tree = Record<string, unknown>
const parse = (xml: string) => reader.parse(xml) as Tree

function validationMessage(fn: () => void): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof IamError && err.code === 'ValidationError') return err.message
    throw err
  }
  throw new Error('no ValidationError thrown')
}

t.test('queryErrorXml is the query APIs ErrorResponse', async (t) => {
  const doc = parse(
    queryErrorXml(
      'iam',
      'NoSuchEntity',
      'The user with name <bob> & "co" cannot be found.',
      'req-1',
    ),
  )
  t.same(doc, {
    ErrorResponse: {
      '@xmlns': IAM_XMLNS,
      Error: {
        Type: 'Sender',
        Code: 'NoSuchEntity',
        Message: 'The user with name <bob> & "co" cannot be found.',
      },
      RequestId: 'req-1',
    },
  })
  const sts = parse(queryErrorXml('sts', 'ServiceFailure', 'x', 'req-2')) as {
    ErrorResponse: { '@xmlns': string; Error: { Type: string } }
  }
  t.equal(sts.ErrorResponse['@xmlns'], STS_XMLNS)
  t.equal(sts.ErrorResponse.Error.Type, 'Receiver', "5xx codes are the receiver's fault")
  t.notMatch(queryErrorXml('iam', 'A', 'x\ry', 'r'), '\r', 'CR is written as a reference')
  t.match(queryErrorXml('iam', 'A', 'x\ry', 'r'), '&#13;')
})

t.test("error statuses are AWS's", async (t) => {
  t.equal(queryErrorStatus('NoSuchEntity'), 404)
  t.equal(queryErrorStatus('EntityAlreadyExists'), 409)
  t.equal(queryErrorStatus('DeleteConflict'), 409)
  t.equal(queryErrorStatus('ValidationError'), 400)
  t.equal(queryErrorStatus('AccessDenied'), 403)
  t.equal(queryErrorStatus('ServiceFailure'), 500)
  t.equal(queryErrorStatus('SignatureDoesNotMatch'), 403)
  t.equal(queryErrorStatus('MissingAuthenticationToken'), 403)
  t.equal(queryErrorStatus('toString'), 400, 'no prototype lookups')
  t.equal(queryErrorStatus('SomethingElse'), 400)
  const r = queryError(
    'sts',
    'InvalidClientTokenId',
    'The security token included in the request is invalid.',
    'r',
  )
  t.equal(r.status, 403)
  t.match(r.body, '<Code>InvalidClientTokenId</Code>')
})

t.test('response documents', async (t) => {
  const withResult = queryResponseXml(
    'iam',
    'CreateUser',
    '<User><UserName>a</UserName></User>',
    'r1',
  )
  t.same(parse(withResult), {
    CreateUserResponse: {
      '@xmlns': IAM_XMLNS,
      CreateUserResult: { User: { UserName: 'a' } },
      ResponseMetadata: { RequestId: 'r1' },
    },
  })
  t.equal(
    queryResponseXml('iam', 'DeleteUser', undefined, 'r&2'),
    `<DeleteUserResponse xmlns="${IAM_XMLNS}"><ResponseMetadata><RequestId>r&amp;2</RequestId></ResponseMetadata></DeleteUserResponse>`,
    'actions without a result have only ResponseMetadata',
  )
  t.match(queryResponseXml('sts', 'GetCallerIdentity', '', 'r'), `xmlns="${STS_XMLNS}"`)
})

t.test('times are ISO 8601 in whole seconds with Z', async (t) => {
  t.equal(isoSeconds(Date.UTC(2026, 10, 23, 10, 0, 0, 999)), '2026-11-23T10:00:00Z')
  t.equal(isoSeconds(0), '1970-01-01T00:00:00Z')
})

t.test('policy documents are RFC 3986 percent-encoded', async (t) => {
  const doc = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::a b+c%d'(x)*!~é/*"}]}`
  const enc = encodePolicyDocument(doc)
  t.match(enc, /^[A-Za-z0-9\-._~%]+$/, 'only unreserved characters and escapes')
  t.match(enc, '%20', 'space is %20, not +')
  t.match(enc, '%2B')
  t.match(enc, '%27%28x%29%2A%21~')
  t.match(enc, '%C3%A9', 'UTF-8 bytes')
  t.equal(decodeURIComponent(enc), doc, 'decodes back')
})

t.test('account id of an ARN', async (t) => {
  t.equal(accountOfArn('arn:aws:iam::123456789012:user/alice'), '123456789012')
  t.equal(accountOfArn('arn:aws:iam::123456789012:root'), '123456789012')
  t.equal(accountOfArn('arn:aws:sts::000000000000:assumed-role/r/s'), '000000000000')
  t.equal(accountOfArn('nonsense'), '')
})

t.test('parameter checks answer AWS validation messages', async (t) => {
  const q = (init: Record<string, string>) => new QueryParams(new URLSearchParams(init))

  t.equal(
    validationMessage(() => {
      const p = q({})
      p.required('UserName', USER_NAME)
      p.check()
    }),
    "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null",
  )

  const two = validationMessage(() => {
    const p = q({ UserName: 'a b', PolicyName: 'x'.repeat(129) })
    p.required('UserName', USER_NAME)
    p.required('PolicyName', USER_NAME)
    p.check()
  })
  t.equal(
    two,
    "2 validation errors detected: Value 'a b' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+; " +
      `Value '${'x'.repeat(129)}' at 'policyName' failed to satisfy constraint: Member must have length less than or equal to 64`,
  )

  t.equal(
    q({ UserName: 'alice+ops=1,x.y@z-w_' }).required('UserName', USER_NAME),
    'alice+ops=1,x.y@z-w_',
  )
  t.equal(q({ UserName: 'a'.repeat(64) }).required('UserName', USER_NAME), 'a'.repeat(64))

  const empty = q({ UserName: '' })
  t.equal(empty.optional('UserName', USER_NAME), undefined)
  t.match(empty.violations[0], 'Member must have length greater than or equal to 1')

  const key = q({ AccessKeyId: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' })
  key.required('AccessKeyId', ACCESS_KEY_ID)
  t.equal(key.violations.length, 1)
  t.notMatch(key.violations[0], 'wJalr', 'an access key id (maybe a pasted secret) is never echoed')
  t.match(key.violations[0], "Value at 'accessKeyId' failed to satisfy constraint")

  const doc = q({ PolicyDocument: 'x\u0100' })
  doc.required('PolicyDocument', POLICY_DOCUMENT)
  t.notMatch(doc.violations[0], 'x\u0100', 'policy documents are never echoed')

  const status = q({ Status: 'Enabled' })
  t.equal(status.requiredOneOf('Status', ['Active', 'Inactive'] as const), 'Active')
  t.same(status.violations, [
    "Value 'Enabled' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]",
  ])
  const noStatus = q({})
  noStatus.requiredOneOf('Status', ['Active', 'Inactive'] as const)
  t.match(noStatus.violations[0], "Value null at 'status'")

  const d = (v: string) => {
    const p = q({ DurationSeconds: v })
    return { value: p.integer('DurationSeconds', 900, 43200), violations: p.violations }
  }
  t.same(d('900'), { value: 900, violations: [] })
  t.same(d('43200'), { value: 43200, violations: [] })
  t.match(
    d('899').violations[0],
    "Value '899' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900",
  )
  t.match(d('43201').violations[0], 'Member must have value less than or equal to 43200')
  t.match(d('1.5').violations[0], 'Member must be an integer')
  t.match(d('').violations[0], 'Member must be an integer')

  t.equal(q({ RoleSessionName: 's1' }).optional('RoleSessionName', ROLE_SESSION_NAME), 's1')
  const short = q({ RoleSessionName: 's' })
  short.optional('RoleSessionName', ROLE_SESSION_NAME)
  t.match(short.violations[0], 'greater than or equal to 2')

  const b = q({ OnlyAttached: 'TRUE', Other: 'nope' })
  t.equal(b.boolean('OnlyAttached'), true)
  t.equal(b.boolean('Other'), undefined)
  t.match(b.violations[0], 'Member must be a boolean')

  t.same(q({}).page(), { maxItems: 100 })
  t.same(q({ MaxItems: '1000', Marker: 'abc' }).page(), { maxItems: 1000, marker: 'abc' })
  const big = q({ MaxItems: '1001' })
  t.same(big.page(), { maxItems: 100 })
  t.match(big.violations[0], "at 'maxItems'")
  const zero = q({ MaxItems: '0' })
  zero.page()
  t.match(zero.violations[0], 'greater than or equal to 1')
  const marker = q({ Marker: 'x\u0100' })
  marker.optional('Marker', MARKER)
  t.equal(marker.violations.length, 1)

  t.equal(q({ Path: '/' }).optional('Path', PATH), '/')
  t.equal(q({ Path: '/a/b/' }).optional('Path', PATH), '/a/b/')
  t.equal(q({ Path: '/a' }).optional('Path', PATH), undefined)
  t.equal(q({ Path: '/x y/' }).optional('Path', POLICY_PATH), undefined)

  t.ok(q({ 'PolicyArns.member.1.arn': 'x' }).has('PolicyArns'))
  t.notOk(q({ PolicyArnsX: 'x' }).has('PolicyArns'))
  t.doesNotThrow(() => q({}).check(), 'no violations, no error')
})

t.test('markers and pages', async (t) => {
  for (const key of ['alice', 'ü/ß', 'arn:aws:iam::123456789012:policy/x']) {
    t.equal(decodeMarker(encodeMarker(key)), key, `marker round trip: ${key}`)
  }
  t.equal(decodeMarker('not a marker!'), undefined)
  t.equal(decodeMarker('YQ=='), undefined, 'padding is not ours')

  const names = ['d', 'b', 'e', 'a', 'c']
  const first = paginate(names, (n) => n, { maxItems: 2 })
  t.same(first.items, ['a', 'b'])
  t.equal(first.isTruncated, true)
  t.type(first.marker, 'string')
  const second = paginate(names, (n) => n, { maxItems: 2, marker: first.marker })
  t.same(second.items, ['c', 'd'])
  // An item added before the marker and the next one removed: paging neither repeats nor skips.
  const changed = ['a', 'b', 'bb', 'c', 'e']
  const third = paginate(changed, (n) => n, { maxItems: 2, marker: second.marker })
  t.same(third, { items: ['e'], isTruncated: false })
  t.same(
    paginate([], (n: string) => n, { maxItems: 100 }),
    { items: [], isTruncated: false },
  )
  t.same(paginate(names, (n) => n, { maxItems: 5 }).isTruncated, false)
  t.throws(() => paginate(names, (n) => n, { maxItems: 2, marker: '***' }), {
    code: 'ValidationError',
  })
})

t.test('Action and Version are checked before anything runs', async (t) => {
  const check = (service: 'iam' | 'sts', init: Record<string, string>) =>
    checkQueryAction(service, new URLSearchParams(init), 'r')
  const code = (r: ReturnType<typeof check>) =>
    r === undefined
      ? undefined
      : {
          status: r.status,
          ...(parse(r.body) as { ErrorResponse: { Error: { Code: string; Message: string } } })
            .ErrorResponse.Error,
        }
  t.equal(check('iam', { Action: 'CreateUser', Version: '2010-05-08' }), undefined)
  t.equal(check('iam', { Action: 'ListUsers' }), undefined, 'Version may be left out')
  t.equal(check('sts', { Action: 'AssumeRole', Version: '2011-06-15' }), undefined)
  t.same(code(check('iam', { Version: '2010-05-08' })), {
    status: 400,
    Type: 'Sender',
    Code: 'MissingAction',
    Message: 'Missing Action',
  })
  t.same(code(check('iam', { Action: '' })), {
    status: 400,
    Type: 'Sender',
    Code: 'MissingAction',
    Message: 'Missing Action',
  })
  t.same(code(check('iam', { Action: 'LaunchRocket', Version: '2010-05-08' })), {
    status: 400,
    Type: 'Sender',
    Code: 'InvalidAction',
    Message: 'Could not find operation LaunchRocket for version 2010-05-08',
  })
  t.match(code(check('iam', { Action: 'CreateUser', Version: '2011-06-15' })), {
    Code: 'InvalidAction',
    Message: 'Could not find operation CreateUser for version 2011-06-15',
  })
  t.match(code(check('iam', { Action: 'AssumeRole' })), { Code: 'InvalidAction' }, 'STS is not IAM')
  t.match(code(check('sts', { Action: 'CreateUser' })), {
    Code: 'InvalidAction',
    Message: 'Could not find operation CreateUser for version 2011-06-15',
  })
  t.match(code(check('iam', { Action: 'constructor' })), { Code: 'InvalidAction' })
  t.match(code(check('iam', { Action: 'createuser' })), { Code: 'InvalidAction' }, 'case matters')
})

t.test('the actions offered', async (t) => {
  t.same([...QUERY_ACTIONS.sts].sort(), ['AssumeRole', 'GetCallerIdentity'])
  t.equal(QUERY_ACTIONS.iam.length, 20)
  t.ok(QUERY_ACTIONS.iam.includes('GetPolicyVersion'))
})
