import t from 'tap'
import { parsePolicy } from '../src/iam/policy.ts'
import {
  ALL_USERS,
  AUTHENTICATED_USERS,
  aclAllows,
  cannedGrants,
  isPublicAcl,
  isPublicPolicy,
  LOG_DELIVERY,
} from '../src/s3/acl.ts'
import { S3Error } from '../src/s3/errors.ts'
import { accessControlPolicyXml, parseAccessControlPolicy } from '../src/s3/xml.ts'

const owner = { id: 'a'.repeat(64), displayName: 'alice' }
const bucketOwner = { id: 'b'.repeat(64), displayName: 'bob' }

t.test('public policies as AWS defines them', async (t) => {
  const pol = (statement: object) =>
    parsePolicy(JSON.stringify({ Version: '2012-10-17', Statement: [statement] }), {
      kind: 'bucket',
      maxBytes: 100_000,
      bucket: 'b',
    })
  const base = { Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' }
  const cases: [string, object, boolean][] = [
    ['Principal "*"', { ...base, Principal: '*' }, true],
    ['AWS "*"', { ...base, Principal: { AWS: '*' } }, true],
    ['a wildcard in an ARN', { ...base, Principal: { AWS: 'arn:aws:iam::*:root' } }, true],
    ['a named user', { ...base, Principal: { AWS: 'arn:aws:iam::1:user/x' } }, false],
    ['a Deny for everyone', { ...base, Effect: 'Deny', Principal: '*' }, false],
    [
      'a fixed source range',
      { ...base, Principal: '*', Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } } },
      false,
    ],
    [
      'every address',
      { ...base, Principal: '*', Condition: { IpAddress: { 'aws:SourceIp': '0.0.0.0/0' } } },
      true,
    ],
    [
      'a fixed principal account',
      { ...base, Principal: '*', Condition: { StringEquals: { 'aws:PrincipalAccount': '1' } } },
      false,
    ],
    [
      'a wildcard principal ARN',
      { ...base, Principal: '*', Condition: { ArnLike: { 'aws:PrincipalArn': 'arn:aws:iam::*' } } },
      true,
    ],
    [
      'IfExists does not pin',
      {
        ...base,
        Principal: '*',
        Condition: { StringEqualsIfExists: { 'aws:PrincipalAccount': '1' } },
      },
      true,
    ],
    [
      'an unrelated condition',
      { ...base, Principal: '*', Condition: { Bool: { 'aws:SecureTransport': 'true' } } },
      true,
    ],
  ]
  for (const [what, st, expect] of cases) t.equal(isPublicPolicy(pol(st)), expect, what)
})

t.test('canned ACLs expand as AWS documents', async (t) => {
  const list = (canned: Parameters<typeof cannedGrants>[0], scope: 'bucket' | 'object') =>
    cannedGrants(canned, owner, bucketOwner, scope).map(
      (g) =>
        `${g.grantee.type === 'Group' ? g.grantee.uri : g.grantee.displayName} ${g.permission}`,
    )
  t.same(list('private', 'object'), ['alice FULL_CONTROL'])
  t.same(list('public-read-write', 'object'), [
    'alice FULL_CONTROL',
    `${ALL_USERS} READ`,
    `${ALL_USERS} WRITE`,
  ])
  t.same(list('bucket-owner-read', 'object'), ['alice FULL_CONTROL', 'bob READ'])
  t.same(list('bucket-owner-full-control', 'bucket'), ['alice FULL_CONTROL'], 'nothing on buckets')
  t.same(list('log-delivery-write', 'bucket'), [
    'alice FULL_CONTROL',
    `${LOG_DELIVERY} WRITE`,
    `${LOG_DELIVERY} READ_ACP`,
  ])
  t.ok(isPublicAcl(cannedGrants('authenticated-read', owner, owner, 'object')), 'public')
  t.notOk(isPublicAcl(cannedGrants('log-delivery-write', owner, owner, 'bucket')), 'not public')
})

t.test('what a grant allows', async (t) => {
  const grants = [
    { grantee: { type: 'CanonicalUser' as const, id: owner.id }, permission: 'READ_ACP' as const },
    { grantee: { type: 'Group' as const, uri: AUTHENTICATED_USERS }, permission: 'READ' as const },
  ]
  const acl = { grants, ignorePublic: false }
  t.ok(aclAllows(acl, 's3:GetObjectAcl', owner.id), 'READ_ACP reads the ACL')
  t.notOk(aclAllows(acl, 's3:PutObjectAcl', owner.id), 'but does not write it')
  t.ok(aclAllows(acl, 's3:GetObject', bucketOwner.id), 'AuthenticatedUsers: any signed caller')
  t.notOk(aclAllows(acl, 's3:GetObject', undefined), 'not the anonymous')
  t.notOk(aclAllows({ grants, ignorePublic: true }, 's3:GetObject', owner.id), 'IgnorePublicAcls')
  t.notOk(aclAllows(acl, 's3:DeleteBucket', owner.id), 'no ACL permission deletes a bucket')
  const full = {
    grants: [
      { grantee: { type: 'Group' as const, uri: ALL_USERS }, permission: 'FULL_CONTROL' as const },
    ],
    ignorePublic: false,
  }
  t.ok(aclAllows(full, 's3:PutBucketAcl', undefined), 'FULL_CONTROL includes WRITE_ACP')
})

t.test('AccessControlPolicy documents', async (t) => {
  const xml = accessControlPolicyXml({
    owner,
    grants: [
      {
        grantee: { type: 'CanonicalUser', id: owner.id, displayName: 'alice' },
        permission: 'FULL_CONTROL',
      },
      { grantee: { type: 'Group', uri: ALL_USERS }, permission: 'READ' },
    ],
  })
  t.match(xml, '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">')
  const back = parseAccessControlPolicy(xml)
  t.same(back.owner, owner, 'the owner round-trips')
  t.same(
    back.grants.map((g) => [g.grantee.type, g.permission]),
    [
      ['CanonicalUser', 'FULL_CONTROL'],
      ['Group', 'READ'],
    ],
    'the grants round-trip',
  )
  const code = (body: string) => {
    try {
      parseAccessControlPolicy(body)
      return 'ok'
    } catch (err) {
      return err instanceof S3Error ? err.code : String(err)
    }
  }
  t.equal(code(''), 'MissingRequestBodyError')
  t.equal(code('<AccessControlPolicy><Bogus/></AccessControlPolicy>'), 'MalformedACLError')
  t.equal(
    code(
      '<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>x</ID><URI>y</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>',
    ),
    'MalformedACLError',
    'a grantee with two identities',
  )
  t.equal(
    code(
      '<AccessControlPolicy><AccessControlList><Grant><Grantee><ID>x</ID></Grantee><Permission>ALL</Permission></Grant></AccessControlList></AccessControlPolicy>',
    ),
    'MalformedACLError',
    'an unknown permission',
  )
})
