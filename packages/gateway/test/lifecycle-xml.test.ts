import { createHash } from 'node:crypto'
import t from 'tap'
import { createChecksum } from '../src/s3/checksums.ts'
import { S3Error } from '../src/s3/errors.ts'
import {
  checkBodyDigests,
  type LifecycleConfiguration,
  lifecycleConfigurationXml,
  lifecycleOf,
  MAX_LIFECYCLE_RULES,
  parseLifecycleConfiguration,
  requireIntegrityHeader,
} from '../src/s3/lifecycle.ts'
import { S3_XMLNS } from '../src/s3/xml.ts'

const doc = (rules: string) =>
  `<LifecycleConfiguration xmlns="${S3_XMLNS}">${rules}</LifecycleConfiguration>`
const rule = (body: string) => doc(`<Rule>${body}</Rule>`)
const ok = '<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>'

/** The S3 error code and message a parse fails with. */
function failure(fn: () => unknown): { code: string; message: string } {
  try {
    fn()
  } catch (err) {
    if (err instanceof S3Error) return { code: err.code, message: err.message }
    throw err
  }
  return { code: 'none', message: '' }
}

const parseFails = (body: string) => failure(() => parseLifecycleConfiguration(body))

t.test('a configuration round-trips through render and parse', async (t) => {
  const conf: LifecycleConfiguration = {
    rules: [
      {
        id: 'legacy',
        status: 'Enabled',
        prefix: 'logs/',
        expiration: { days: 30 },
      },
      {
        id: 'filtered-prefix',
        status: 'Disabled',
        filter: { prefix: 'tmp/' },
        expiration: { date: '2030-01-01T00:00:00.000Z' },
        abortIncompleteMultipartUpload: { daysAfterInitiation: 7 },
      },
      {
        id: 'one-tag',
        status: 'Enabled',
        filter: { tags: [{ key: 'class', value: 'temp' }] },
        expiration: { days: 3 },
        noncurrentVersionExpiration: { noncurrentDays: 10, newerNoncurrentVersions: 2 },
      },
      {
        id: 'and',
        status: 'Enabled',
        filter: {
          and: true,
          prefix: 'big/',
          tags: [
            { key: 'a', value: '1' },
            { key: 'b', value: '' },
          ],
          objectSizeGreaterThan: 1024,
          objectSizeLessThan: 1048576,
        },
        noncurrentVersionExpiration: { noncurrentDays: 1 },
      },
      {
        id: 'size',
        status: 'Enabled',
        filter: { objectSizeGreaterThan: 0 },
        expiration: { days: 365 },
      },
      {
        id: 'markers',
        status: 'Enabled',
        filter: {},
        expiration: { expiredObjectDeleteMarker: true },
      },
      {
        id: 'escaped <&> "id"',
        status: 'Enabled',
        filter: { prefix: 'a&b<c>/' },
        expiration: { days: 1 },
      },
    ],
  }
  const xml = lifecycleConfigurationXml(conf)
  t.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<LifecycleConfiguration'))
  t.match(xml, `xmlns="${S3_XMLNS}"`)
  t.same(parseLifecycleConfiguration(xml), conf, 'what GET renders parses back the same')
  t.same(
    parseLifecycleConfiguration(Buffer.from(xml)),
    conf,
    'bytes parse like text (UTF-8 decoded)',
  )
})

t.test('rendering follows AWS element order', async (t) => {
  const xml = lifecycleConfigurationXml({
    rules: [
      {
        id: 'r1',
        status: 'Enabled',
        filter: { prefix: 'p/' },
        expiration: { days: 2 },
        noncurrentVersionExpiration: { noncurrentDays: 3, newerNoncurrentVersions: 4 },
        abortIncompleteMultipartUpload: { daysAfterInitiation: 5 },
      },
    ],
  })
  t.equal(
    xml,
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<LifecycleConfiguration xmlns="${S3_XMLNS}"><Rule><ID>r1</ID>` +
      '<Filter><Prefix>p/</Prefix></Filter><Status>Enabled</Status>' +
      '<Expiration><Days>2</Days></Expiration>' +
      '<NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays>' +
      '<NewerNoncurrentVersions>4</NewerNoncurrentVersions></NoncurrentVersionExpiration>' +
      '<AbortIncompleteMultipartUpload><DaysAfterInitiation>5</DaysAfterInitiation>' +
      '</AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>',
  )
  t.match(
    lifecycleConfigurationXml({
      rules: [{ id: 'e', status: 'Enabled', filter: {}, expiration: { days: 1 } }],
    }),
    '<Filter></Filter>',
    'an empty filter is written empty',
  )
})

t.test('parsing accepts what AWS accepts', async (t) => {
  const noId = parseLifecycleConfiguration(
    doc(
      `<Rule><Filter/>${ok}</Rule><Rule><ID></ID><Prefix/><Status>Disabled</Status>` +
        '<AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation>' +
        '</AbortIncompleteMultipartUpload></Rule>',
    ),
  )
  const [a, b] = noId.rules
  t.ok(a && a.id.length > 0 && b && b.id.length > 0, 'rules without an ID get one')
  t.not(a?.id, b?.id, 'generated IDs differ')
  t.same(a?.filter, {}, 'an empty Filter selects every object')
  t.equal(b?.prefix, '', 'an empty legacy Prefix is kept')
  t.same(
    parseLifecycleConfiguration(lifecycleConfigurationXml(noId)),
    noId,
    'generated IDs are stored',
  )

  const ns = parseLifecycleConfiguration(
    `<?xml version="1.0" encoding="UTF-8"?>\n<s3:LifecycleConfiguration xmlns:s3="${S3_XMLNS}">` +
      '<s3:Rule><s3:ID>x</s3:ID><s3:Filter><s3:Prefix>a&amp;b&#47;</s3:Prefix></s3:Filter>' +
      '<s3:Status>Enabled</s3:Status><s3:Expiration><s3:Days> 5 </s3:Days></s3:Expiration>' +
      '</s3:Rule></s3:LifecycleConfiguration>',
  )
  t.same(
    ns.rules[0],
    { id: 'x', status: 'Enabled', filter: { prefix: 'a&b/' }, expiration: { days: 5 } },
    'namespace prefixes, references and whitespace around numbers',
  )

  const date = parseLifecycleConfiguration(
    rule(
      '<ID>d</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>' +
        '<Expiration><Date>2031-03-04T02:00:00+02:00</Date></Expiration>',
    ),
  )
  t.equal(date.rules[0]?.expiration?.date, '2031-03-04T00:00:00.000Z', 'a midnight UTC in any zone')

  const marker = parseLifecycleConfiguration(
    rule(
      '<Filter><Prefix>x/</Prefix></Filter><Status>Enabled</Status>' +
        '<Expiration><ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration>',
    ),
  )
  t.equal(marker.rules[0]?.expiration?.expiredObjectDeleteMarker, false)

  const max = doc(
    Array.from(
      { length: MAX_LIFECYCLE_RULES },
      (_, i) => `<Rule><ID>r${i}</ID><Filter><Prefix>${i}/</Prefix></Filter>${ok}</Rule>`,
    ).join(''),
  )
  t.equal(parseLifecycleConfiguration(max).rules.length, MAX_LIFECYCLE_RULES, '1000 rules')
})

t.test('MalformedXML for documents outside the schema', async (t) => {
  const cases: [string, string][] = [
    ['not well-formed', rule(ok).slice(0, -5)],
    ['wrong root', `<Lifecycle>${`<Rule><Filter/>${ok}</Rule>`}</Lifecycle>`],
    ['a DOCTYPE', `<!DOCTYPE x [<!ENTITY a "b">]>${rule(`<Filter/>${ok}`)}`],
    ['an undeclared entity', rule(`<Filter><Prefix>&a;</Prefix></Filter>${ok}`)],
    ['no rule', doc('')],
    ['an unknown element', rule(`<Filter/>${ok}<Colour>red</Colour>`)],
    ['text inside Rule', rule(`<Filter/>${ok}stray`)],
    [
      'a Status other than Enabled/Disabled',
      rule('<Filter/><Status>On</Status><Expiration><Days>1</Days></Expiration>'),
    ],
    ['no Status', rule('<Filter/><Expiration><Days>1</Days></Expiration>')],
    ['two Status', rule(`<Filter/><Status>Enabled</Status>${ok}`)],
    ['both Filter and Prefix', rule(`<Prefix>a</Prefix><Filter/>${ok}`)],
    ['neither Filter nor Prefix', rule(ok)],
    [
      'two predicates in Filter',
      rule(`<Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter>${ok}`),
    ],
    ['And with one predicate', rule(`<Filter><And><Prefix>a</Prefix></And></Filter>${ok}`)],
    ['a Tag without Value', rule(`<Filter><Tag><Key>k</Key></Tag></Filter>${ok}`)],
    ['an empty Expiration', rule('<Filter/><Status>Enabled</Status><Expiration></Expiration>')],
    [
      'Days not a number',
      rule('<Filter/><Status>Enabled</Status><Expiration><Days>x</Days></Expiration>'),
    ],
    [
      'a Date that is not ISO 8601',
      rule('<Filter/><Status>Enabled</Status><Expiration><Date>tomorrow</Date></Expiration>'),
    ],
    [
      'a Date without a time',
      rule('<Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01</Date></Expiration>'),
    ],
    [
      'ExpiredObjectDeleteMarker not a boolean',
      rule(
        '<Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>yes</ExpiredObjectDeleteMarker></Expiration>',
      ),
    ],
    [
      'NoncurrentVersionExpiration without NoncurrentDays',
      rule(
        '<Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NewerNoncurrentVersions>1</NewerNoncurrentVersions></NoncurrentVersionExpiration>',
      ),
    ],
    [
      'AbortIncompleteMultipartUpload without days',
      rule(
        '<Filter/><Status>Enabled</Status><AbortIncompleteMultipartUpload></AbortIncompleteMultipartUpload>',
      ),
    ],
    [
      'an object size that is not a number',
      rule(`<Filter><ObjectSizeGreaterThan>big</ObjectSizeGreaterThan></Filter>${ok}`),
    ],
  ]
  for (const [what, body] of cases) {
    t.equal(parseFails(body).code, 'MalformedXML', what)
  }
  t.equal(parseFails('').code, 'MissingRequestBodyError', 'an empty body')
  t.equal(
    failure(() => parseLifecycleConfiguration(Buffer.from([0x3c, 0xff, 0xfe]))).code,
    'MalformedXML',
    'not UTF-8',
  )
})

t.test('InvalidArgument for values AWS refuses', async (t) => {
  const exp = (inner: string) =>
    rule(`<Filter/><Status>Enabled</Status><Expiration>${inner}</Expiration>`)
  const cases: [string, string, RegExp][] = [
    ['Days 0', exp('<Days>0</Days>'), /^'Days' for Expiration action must be a positive integer$/],
    [
      'Days negative',
      exp('<Days>-3</Days>'),
      /'Days' for Expiration action must be a positive integer/,
    ],
    [
      'Date not at midnight',
      exp('<Date>2030-01-01T12:00:00Z</Date>'),
      /^'Date' must be at midnight GMT$/,
    ],
    [
      'Days and Date',
      exp('<Days>1</Days><Date>2030-01-01T00:00:00Z</Date>'),
      /Only one of Days or Date/,
    ],
    [
      'ExpiredObjectDeleteMarker with Days',
      exp('<Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>'),
      /ExpiredObjectDeleteMarker cannot be specified with Days or Date/,
    ],
    [
      'ExpiredObjectDeleteMarker with Date',
      exp(
        '<Date>2030-01-01T00:00:00Z</Date><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker>',
      ),
      /ExpiredObjectDeleteMarker cannot be specified with Days or Date/,
    ],
    [
      'duplicate IDs',
      doc(
        `<Rule><ID>same</ID><Filter/>${ok}</Rule><Rule><ID>same</ID><Prefix>x</Prefix>${ok}</Rule>`,
      ),
      /^Rule ID must be unique. Found same ID for more than one rule$/,
    ],
    [
      'more than 1000 rules',
      doc(
        Array.from({ length: MAX_LIFECYCLE_RULES + 1 }, () => `<Rule><Filter/>${ok}</Rule>`).join(
          '',
        ),
      ),
      /maximum of 1000 rules/,
    ],
    [
      'an ID of 256 characters',
      rule(`<ID>${'x'.repeat(256)}</ID><Filter/>${ok}`),
      /ID length should not exceed allowed limit of 255/,
    ],
    [
      'NoncurrentDays 0',
      rule(
        '<Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>0</NoncurrentDays></NoncurrentVersionExpiration>',
      ),
      /'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer/,
    ],
    [
      'NewerNoncurrentVersions 0',
      rule(
        '<Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>0</NewerNoncurrentVersions></NoncurrentVersionExpiration>',
      ),
      /'NewerNoncurrentVersions'/,
    ],
    [
      'NewerNoncurrentVersions 101',
      rule(
        '<Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>101</NewerNoncurrentVersions></NoncurrentVersionExpiration>',
      ),
      /must not exceed 100/,
    ],
    [
      'DaysAfterInitiation 0',
      rule(
        '<Filter/><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>0</DaysAfterInitiation></AbortIncompleteMultipartUpload>',
      ),
      /'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer/,
    ],
    [
      'duplicate tag keys',
      rule(
        `<Filter><And><Tag><Key>k</Key><Value>1</Value></Tag><Tag><Key>k</Key><Value>2</Value></Tag></And></Filter>${ok}`,
      ),
      /Duplicate Tag Keys/,
    ],
    [
      'sizes that select nothing',
      rule(
        `<Filter><And><ObjectSizeGreaterThan>10</ObjectSizeGreaterThan><ObjectSizeLessThan>10</ObjectSizeLessThan></And></Filter>${ok}`,
      ),
      /ObjectSizeGreaterThan must be less than ObjectSizeLessThan/,
    ],
    [
      'a negative size',
      rule(`<Filter><ObjectSizeGreaterThan>-1</ObjectSizeGreaterThan></Filter>${ok}`),
      /non-negative/,
    ],
  ]
  for (const [what, body, message] of cases) {
    const f = parseFails(body)
    t.equal(f.code, 'InvalidArgument', what)
    t.match(f.message, message, `${what}: message`)
  }
})

t.test('InvalidRequest and NotImplemented for rules AWS (or Tessera) refuses', async (t) => {
  const tag = '<Tag><Key>k</Key><Value>v</Value></Tag>'
  const abort =
    '<AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>'
  const cases: [string, string, RegExp][] = [
    [
      'no action',
      rule('<Filter/><Status>Enabled</Status>'),
      /^At least one action needs to be specified in a rule$/,
    ],
    [
      'tags with AbortIncompleteMultipartUpload',
      rule(`<Filter>${tag}</Filter><Status>Enabled</Status>${abort}`),
      /AbortIncompleteMultipartUpload cannot be specified with Tags/,
    ],
    [
      'a size filter with AbortIncompleteMultipartUpload',
      rule(
        `<Filter><ObjectSizeLessThan>5</ObjectSizeLessThan></Filter><Status>Enabled</Status>${abort}`,
      ),
      /object size filter/,
    ],
    [
      'tags with ExpiredObjectDeleteMarker',
      rule(
        `<Filter><And><Prefix>a</Prefix>${tag}</And></Filter><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>`,
      ),
      /ExpiredObjectDeleteMarker cannot be specified with Tags/,
    ],
  ]
  for (const [what, body, message] of cases) {
    const f = parseFails(body)
    t.equal(f.code, 'InvalidRequest', what)
    t.match(f.message, message, `${what}: message`)
  }
  const transition = parseFails(
    rule(
      `<Filter/>${ok}<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>`,
    ),
  )
  t.equal(transition.code, 'NotImplemented', 'transitions are refused, not ignored')
})

t.test('PUT needs Content-MD5 or a flexible checksum, and the body must match it', async (t) => {
  const body = Buffer.from(rule(`<Filter/>${ok}`))
  const missing = failure(() => requireIntegrityHeader({}))
  t.same(missing, {
    code: 'InvalidRequest',
    message: 'Missing required header for this request: Content-MD5',
  })
  const md5 = createHash('md5').update(body).digest('base64')
  const byMd5 = requireIntegrityHeader({ 'content-md5': md5 })
  t.doesNotThrow(() => checkBodyDigests(byMd5, body), 'a matching Content-MD5')
  t.equal(
    failure(() => checkBodyDigests(byMd5, Buffer.from('other'))).code,
    'BadDigest',
    'a Content-MD5 of another body',
  )
  const crc = createChecksum('CRC32')
  crc.update(body)
  const byCrc = requireIntegrityHeader({
    'x-amz-checksum-crc32': crc.digest(),
    'x-amz-sdk-checksum-algorithm': 'CRC32',
  })
  t.doesNotThrow(() => checkBodyDigests(byCrc, body), 'a matching x-amz-checksum-crc32')
  t.equal(failure(() => checkBodyDigests(byCrc, Buffer.from('x'))).code, 'BadDigest')
  t.equal(
    failure(() => requireIntegrityHeader({ 'content-md5': 'short' })).code,
    'InvalidDigest',
    'a Content-MD5 that is not 16 bytes',
  )
})

t.test('lifecycleOf reads the stored configuration', async (t) => {
  t.equal(lifecycleOf(undefined), undefined)
  t.equal(lifecycleOf({ tags: {} }), undefined)
  t.equal(lifecycleOf({ lifecycle: { rules: [] } }), undefined)
  const conf = { rules: [{ id: 'a', status: 'Enabled', filter: {}, expiration: { days: 1 } }] }
  t.same(lifecycleOf({ lifecycle: conf }), conf)
})
