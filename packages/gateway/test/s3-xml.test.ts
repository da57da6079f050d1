import { XMLParser } from 'fast-xml-parser'
import t from 'tap'
import { S3Error } from '../src/s3/errors.ts'
import {
  completeMultipartUploadXml,
  copyObjectResultXml,
  copyPartResultXml,
  deleteResultXml,
  encodeKeyForList,
  errorXml,
  initiateMultipartUploadXml,
  type ListedObject,
  listBucketsXml,
  listMultipartUploadsXml,
  listObjectsV1Xml,
  listObjectsV2Xml,
  listObjectVersionsXml,
  listPartsXml,
  locationXml,
  MAX_BUCKET_TAGS,
  MAX_OBJECT_TAGS,
  type Owner,
  parseCompleteMultipartUpload,
  parseCreateBucketConfiguration,
  parseDelete,
  parseTagging,
  parseVersioningConfiguration,
  quoteEtag,
  S3_XMLNS,
  taggingXml,
  versioningXml,
  xmlEscape,
} from '../src/s3/xml.ts'

// Documents are compared as trees read back with fast-xml-parser: each element is
// [name, text] when it holds only text and [name, children] otherwise, whitespace between
// elements dropped. `<Prefix/>` and `<Prefix></Prefix>` are the same tree.
type Shape = [string, string | Shape[]]

const reader = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: false,
  attributeNamePrefix: '',
  trimValues: false,
  parseTagValue: false,
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
})

type OrderedNode = Record<string, unknown>

function nameOf(node: OrderedNode): string {
  const name = Object.keys(node).find((k) => k !== ':@')
  if (name === undefined) throw new Error('node without a name')
  return name
}

function shapeOf(name: string, nodes: OrderedNode[]): Shape {
  const children: Shape[] = []
  let text = ''
  for (const node of nodes) {
    const child = nameOf(node)
    if (child === '#text') text += String(node[child])
    else children.push(shapeOf(child, node[child] as OrderedNode[]))
  }
  return [name, children.length > 0 ? children : text]
}

function rootNode(doc: string): OrderedNode {
  const nodes = reader.parse(doc) as OrderedNode[]
  const roots = nodes.filter((n) => nameOf(n) !== '#text')
  if (roots.length !== 1 || roots[0] === undefined) throw new Error('not one root element')
  return roots[0]
}

function shape(doc: string): Shape {
  const root = rootNode(doc)
  const name = nameOf(root)
  return shapeOf(name, root[name] as OrderedNode[])
}

function rootAttributes(doc: string): Record<string, unknown> {
  return (rootNode(doc)[':@'] as Record<string, unknown> | undefined) ?? {}
}

// Every leaf as `path=text`, sorted: for AWS samples whose element order disagrees with other
// samples of the same operation, and with what AWS sends.
function leaves(s: Shape, parent = ''): string[] {
  const [name, content] = s
  const path = `${parent}/${name}`
  if (typeof content === 'string') return [`${path}=${content}`]
  return content.flatMap((c) => leaves(c, path)).sort()
}

// The element names at a path of child names, in document order.
function namesAt(s: Shape, ...path: string[]): string[] {
  let node: Shape = s
  for (const step of path) {
    const content = node[1]
    const next: Shape | undefined =
      typeof content === 'string' ? undefined : content.find(([n]) => n === step)
    if (next === undefined) throw new Error(`no ${step} in ${node[0]}`)
    node = next
  }
  const content = node[1]
  return typeof content === 'string' ? [] : content.map(([n]) => n)
}

// The text of the first leaf at a path.
function textAt(s: Shape, ...path: string[]): string | undefined {
  let node: Shape = s
  for (const step of path) {
    const content = node[1]
    const next: Shape | undefined =
      typeof content === 'string' ? undefined : content.find(([n]) => n === step)
    if (next === undefined) return undefined
    node = next
  }
  return typeof node[1] === 'string' ? node[1] : undefined
}

function s3Code(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof S3Error) return err.code
    throw err
  }
  return 'no error'
}

function s3Message(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof S3Error) return err.message
    throw err
  }
  return 'no error'
}

const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
const AWS_ID = '75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a'
const date = (iso: string) => new Date(iso)

// The declaration, then the root element in S3's namespace, exactly as AWS writes them.
function startsAsAws(doc: string, root: string): boolean {
  const open = `${DECLARATION}<${root} xmlns="${S3_XMLNS}"`
  return doc.startsWith(`${open}>`) || doc.startsWith(`${open}/>`)
}

t.test('escaping', async (t) => {
  t.equal(xmlEscape(`a<b>&"'c`), 'a&lt;b&gt;&amp;&quot;&apos;c')
  t.equal(xmlEscape('plain/ключ/🙂'), 'plain/ключ/🙂', 'Unicode is written as is')
  t.equal(xmlEscape('a\rb'), 'a&#13;b', 'CR as a reference, or a parser would make it LF')
  t.equal(xmlEscape('a\nb\tc'), 'a\nb\tc', 'LF and tab survive parsing as they are')
  t.equal(xmlEscape('a\u0001b'), 'a&#1;b', 'characters XML cannot carry, as references')
  t.equal(xmlEscape('a\uD800b'), 'a\uFFFDb', 'a lone surrogate cannot reach the wire')
  t.equal(quoteEtag('abc'), '"abc"')
  t.equal(quoteEtag('"abc"'), '"abc"')
})

t.test('encodeKeyForList', async (t) => {
  t.equal(encodeKeyForList('a b+c', undefined), 'a b+c', 'unchanged without an encoding type')
  t.equal(encodeKeyForList('photos/2006/a b+c%d', 'url'), 'photos/2006/a+b%2Bc%25d')
  t.equal(encodeKeyForList('-_.*/~', 'url'), '-_.*/%7E', "'/' and '*' kept, '~' encoded")
  t.equal(encodeKeyForList('é🙂', 'url'), '%C3%A9%F0%9F%99%82', 'UTF-8 bytes')
  t.equal(encodeKeyForList('a\u0001\rb&<', 'url'), 'a%01%0Db%26%3C')
  for (const key of ['a b+c', 'ключ/🙂', '\u0001\r\n', '100%.csv', "it's <&>"]) {
    const encoded = encodeKeyForList(key, 'url')
    t.equal(decodeURIComponent(encoded.replaceAll('+', ' ')), key, `${JSON.stringify(key)} back`)
  }
})

t.test('errorXml', async (t) => {
  const doc = errorXml({
    code: 'NoSuchKey',
    message: 'The resource you requested does not exist',
    resource: '/mybucket/myfoto.jpg',
    requestId: '4442587FB7D0A2F9',
    hostId: 'host-id',
  })
  t.ok(doc.startsWith(`${DECLARATION}<Error><Code>`), 'no namespace on Error, as AWS')
  t.same(rootAttributes(doc), {})
  // AWS's sample, plus the HostId every live error carries.
  t.same(
    shape(doc),
    shape(`<Error>
  <Code>NoSuchKey</Code>
  <Message>The resource you requested does not exist</Message>
  <Resource>/mybucket/myfoto.jpg</Resource>
  <RequestId>4442587FB7D0A2F9</RequestId>
  <HostId>host-id</HostId>
</Error>`),
  )
  const withExtra = shape(
    errorXml({
      code: 'NoSuchBucket',
      message: 'The specified bucket does not exist',
      extra: { BucketName: 'a&b', Key: '<k>' },
      requestId: 'r',
      hostId: 'h',
    }),
  )
  t.same(namesAt(withExtra), ['Code', 'Message', 'BucketName', 'Key', 'RequestId', 'HostId'])
  t.equal(textAt(withExtra, 'BucketName'), 'a&b')
  t.equal(textAt(withExtra, 'Key'), '<k>')
})

t.test('listBucketsXml', async (t) => {
  const doc = listBucketsXml({
    owner: { id: 'bcaf1ffd86f461ca5fb16fd081034f', displayName: 'webfile' },
    buckets: [
      { name: 'quotes', created: date('2006-02-03T16:45:09.000Z') },
      { name: 'samples', created: date('2006-02-03T16:41:58.000Z') },
    ],
  })
  t.ok(startsAsAws(doc, 'ListAllMyBucketsResult'), 'ListAllMyBucketsResult starts as AWS writes it')
  t.same(
    shape(doc),
    shape(`<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01">
  <Owner>
    <ID>bcaf1ffd86f461ca5fb16fd081034f</ID>
    <DisplayName>webfile</DisplayName>
  </Owner>
  <Buckets>
    <Bucket>
      <Name>quotes</Name>
      <CreationDate>2006-02-03T16:45:09.000Z</CreationDate>
    </Bucket>
    <Bucket>
      <Name>samples</Name>
      <CreationDate>2006-02-03T16:41:58.000Z</CreationDate>
    </Bucket>
  </Buckets>
</ListAllMyBucketsResult>`),
    "AWS's sample",
  )
  const paged = shape(
    listBucketsXml({
      owner: { id: 'o' },
      buckets: [{ name: 'b', created: date('2024-01-01T00:00:00Z'), region: 'eu-west-1' }],
      continuationToken: 'next',
      prefix: 'b',
    }),
  )
  t.same(namesAt(paged), ['Owner', 'Buckets', 'ContinuationToken', 'Prefix'])
  t.same(namesAt(paged, 'Owner'), ['ID'], 'no DisplayName when none is given')
  t.same(namesAt(paged, 'Buckets', 'Bucket'), ['Name', 'CreationDate', 'BucketRegion'])
  t.equal(textAt(paged, 'Buckets', 'Bucket', 'CreationDate'), '2024-01-01T00:00:00.000Z')
})

t.test('locationXml and versioningXml', async (t) => {
  const europe = locationXml('Europe')
  t.equal(
    europe,
    `${DECLARATION}<LocationConstraint xmlns="${S3_XMLNS}">Europe</LocationConstraint>`,
  )
  const usEast = locationXml('us-east-1')
  t.ok(startsAsAws(usEast, 'LocationConstraint'), 'LocationConstraint starts as AWS writes it')
  t.same(shape(usEast), ['LocationConstraint', ''], 'us-east-1 is the empty constraint')

  const never = versioningXml()
  t.ok(
    startsAsAws(never, 'VersioningConfiguration'),
    'VersioningConfiguration starts as AWS writes it',
  )
  t.same(shape(never), ['VersioningConfiguration', ''], 'no Status when never configured')
  t.same(
    shape(versioningXml('Enabled')),
    shape(`<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Status>Enabled</Status>
</VersioningConfiguration>`),
  )
  t.same(namesAt(shape(versioningXml('Suspended', 'Disabled'))), ['Status', 'MfaDelete'])
})

t.test('taggingXml', async (t) => {
  const doc = taggingXml([
    { key: 'tag1', value: 'val1' },
    { key: 'tag2', value: 'val2' },
  ])
  t.ok(startsAsAws(doc, 'Tagging'), 'Tagging starts as AWS writes it')
  t.same(
    shape(doc),
    shape(`<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <TagSet>
     <Tag>
       <Key>tag1</Key>
       <Value>val1</Value>
     </Tag>
     <Tag>
       <Key>tag2</Key>
       <Value>val2</Value>
     </Tag>
  </TagSet>
</Tagging>`),
  )
  t.same(shape(taggingXml([])), ['Tagging', [['TagSet', '']]], 'an empty TagSet')
  const odd = shape(taggingXml([{ key: 'a&b <c>', value: '"q" \'s\'' }]))
  t.equal(textAt(odd, 'TagSet', 'Tag', 'Key'), 'a&b <c>')
  t.equal(textAt(odd, 'TagSet', 'Tag', 'Value'), '"q" \'s\'')
})

const photoOwner: Owner = { id: 'canonical-user-id', displayName: 'display-name' }

t.test('listObjectsV1Xml', async (t) => {
  const doc = listObjectsV1Xml({
    bucket: 'example-bucket',
    maxKeys: 1000,
    delimiter: '/',
    isTruncated: false,
    contents: [
      {
        key: 'sample.jpg',
        lastModified: date('2011-02-26T01:56:20.000Z'),
        etag: 'bf1d737a4d46a19f3bced6905cc8b902',
        size: 142863,
        owner: photoOwner,
      },
    ],
    commonPrefixes: ['photos/'],
  })
  t.ok(startsAsAws(doc, 'ListBucketResult'), 'ListBucketResult starts as AWS writes it')
  t.same(
    shape(doc),
    shape(`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix></Prefix>
  <Marker></Marker>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>sample.jpg</Key>
    <LastModified>2011-02-26T01:56:20.000Z</LastModified>
    <ETag>&quot;bf1d737a4d46a19f3bced6905cc8b902&quot;</ETag>
    <Size>142863</Size>
    <Owner>
      <ID>canonical-user-id</ID>
      <DisplayName>display-name</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>photos/</Prefix>
  </CommonPrefixes>
</ListBucketResult>`),
    "AWS's delimiter sample, element for element",
  )

  // AWS's marker sample writes StorageClass before Owner, unlike its delimiter sample and
  // live answers; it holds the same elements.
  const owner = { id: 'bcaf1ffd86a5fb16fd081034f', displayName: 'webfile' }
  const nelson = listObjectsV1Xml({
    bucket: 'quotes',
    prefix: 'N',
    marker: 'Ned',
    maxKeys: 40,
    isTruncated: false,
    contents: [
      {
        key: 'Nelson',
        lastModified: date('2006-01-01T12:00:00.000Z'),
        etag: '"828ef3fdfa96f00ad9f27c383fc9ac7f"',
        size: 5,
        owner,
      },
      {
        key: 'Neo',
        lastModified: date('2006-01-01T12:00:00.000Z'),
        etag: '"828ef3fdfa96f00ad9f27c383fc9ac7f"',
        size: 4,
        owner,
      },
    ],
    commonPrefixes: [],
  })
  t.same(
    leaves(shape(nelson)),
    leaves(
      shape(`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>quotes</Name>
  <Prefix>N</Prefix>
  <Marker>Ned</Marker>
  <MaxKeys>40</MaxKeys>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>Nelson</Key>
    <LastModified>2006-01-01T12:00:00.000Z</LastModified>
    <ETag>&quot;828ef3fdfa96f00ad9f27c383fc9ac7f&quot;</ETag>
    <Size>5</Size>
    <StorageClass>STANDARD</StorageClass>
    <Owner>
      <ID>bcaf1ffd86a5fb16fd081034f</ID>
      <DisplayName>webfile</DisplayName>
    </Owner>
  </Contents>
  <Contents>
    <Key>Neo</Key>
    <LastModified>2006-01-01T12:00:00.000Z</LastModified>
    <ETag>&quot;828ef3fdfa96f00ad9f27c383fc9ac7f&quot;</ETag>
    <Size>4</Size>
    <StorageClass>STANDARD</StorageClass>
    <Owner>
      <ID>bcaf1ffd86a5fb16fd081034f</ID>
      <DisplayName>webfile</DisplayName>
    </Owner>
  </Contents>
</ListBucketResult>`),
    ),
    "AWS's marker sample, as a set of elements",
  )

  const full = shape(
    listObjectsV1Xml({
      bucket: 'b',
      prefix: 'p',
      marker: 'm',
      nextMarker: 'n',
      maxKeys: 2,
      delimiter: '/',
      isTruncated: true,
      encodingType: 'url',
      contents: [
        {
          key: 'k',
          lastModified: date('2024-05-06T07:08:09.010Z'),
          etag: 'e',
          size: 1,
          checksumAlgorithm: 'CRC64NVME',
          checksumType: 'FULL_OBJECT',
          owner: { id: 'o' },
        },
      ],
      commonPrefixes: ['p/'],
    }),
  )
  t.same(namesAt(full), [
    'Name',
    'Prefix',
    'Marker',
    'NextMarker',
    'MaxKeys',
    'Delimiter',
    'EncodingType',
    'IsTruncated',
    'Contents',
    'CommonPrefixes',
  ])
  t.same(namesAt(full, 'Contents'), [
    'Key',
    'LastModified',
    'ETag',
    'ChecksumAlgorithm',
    'ChecksumType',
    'Size',
    'Owner',
    'StorageClass',
  ])
  t.equal(textAt(full, 'Contents', 'LastModified'), '2024-05-06T07:08:09.010Z')
  t.equal(textAt(full, 'Contents', 'ETag'), '"e"')
})

t.test('listObjectsV2Xml', async (t) => {
  const startAfter = listObjectsV2Xml({
    bucket: 'quotes',
    prefix: 'E',
    startAfter: 'ExampleGuide.pdf',
    maxKeys: 3,
    isTruncated: false,
    contents: [
      {
        key: 'ExampleObject.txt',
        lastModified: date('2013-09-17T18:07:53.000Z'),
        etag: '"599bab3ed2c697f1d26842727561fd94"',
        size: 857,
        storageClass: 'REDUCED_REDUNDANCY',
      },
    ],
    commonPrefixes: [],
  })
  t.ok(startsAsAws(startAfter, 'ListBucketResult'), 'ListBucketResult starts as AWS writes it')
  t.same(
    shape(startAfter),
    shape(`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>quotes</Name>
  <Prefix>E</Prefix>
  <StartAfter>ExampleGuide.pdf</StartAfter>
  <KeyCount>1</KeyCount>
  <MaxKeys>3</MaxKeys>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>ExampleObject.txt</Key>
    <LastModified>2013-09-17T18:07:53.000Z</LastModified>
    <ETag>"599bab3ed2c697f1d26842727561fd94"</ETag>
    <Size>857</Size>
    <StorageClass>REDUCED_REDUNDANCY</StorageClass>
  </Contents>
</ListBucketResult>`),
    "AWS's start-after sample",
  )

  const delimited = listObjectsV2Xml({
    bucket: 'example-bucket',
    maxKeys: 1000,
    delimiter: '/',
    isTruncated: false,
    contents: [
      {
        key: 'sample.jpg',
        lastModified: date('2011-02-26T01:56:20.000Z'),
        etag: 'bf1d737a4d46a19f3bced6905cc8b902',
        size: 142863,
      },
    ],
    commonPrefixes: ['photos/'],
  })
  t.same(
    shape(delimited),
    shape(`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix></Prefix>
  <KeyCount>2</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>sample.jpg</Key>
    <LastModified>2011-02-26T01:56:20.000Z</LastModified>
    <ETag>"bf1d737a4d46a19f3bced6905cc8b902"</ETag>
    <Size>142863</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>photos/</Prefix>
  </CommonPrefixes>
</ListBucketResult>`),
    "AWS's delimiter sample: KeyCount counts common prefixes",
  )

  const happyface: ListedObject = {
    key: 'happyface.jpg',
    lastModified: date('2014-11-21T19:40:05.000Z'),
    etag: '"70ee1738b6b21e2c8a43f3a5ab0eee71"',
    size: 11,
  }
  t.same(
    shape(
      listObjectsV2Xml({
        bucket: 'bucket',
        nextContinuationToken: '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=',
        keyCount: 1000,
        maxKeys: 1000,
        isTruncated: true,
        contents: [happyface],
        commonPrefixes: [],
      }),
    ),
    shape(`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name>
  <Prefix></Prefix>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <KeyCount>1000</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents>
    <Key>happyface.jpg</Key>
    <LastModified>2014-11-21T19:40:05.000Z</LastModified>
    <ETag>"70ee1738b6b21e2c8a43f3a5ab0eee71"</ETag>
    <Size>11</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
</ListBucketResult>`),
    "AWS's truncated sample",
  )
  t.same(
    namesAt(
      shape(
        listObjectsV2Xml({
          bucket: 'bucket',
          continuationToken: '1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=',
          maxKeys: 1000,
          isTruncated: false,
          contents: [happyface],
          commonPrefixes: [],
        }),
      ),
    ),
    ['Name', 'Prefix', 'ContinuationToken', 'KeyCount', 'MaxKeys', 'IsTruncated', 'Contents'],
    "AWS's continued sample",
  )

  const full = shape(
    listObjectsV2Xml({
      bucket: 'b',
      prefix: 'p',
      startAfter: 's',
      continuationToken: 'c',
      nextContinuationToken: 'n',
      maxKeys: 2,
      delimiter: '/',
      isTruncated: true,
      encodingType: 'url',
      fetchOwner: true,
      contents: [{ ...happyface, owner: { id: 'o', displayName: 'd' } }, happyface],
      commonPrefixes: [],
    }),
  )
  t.same(namesAt(full), [
    'Name',
    'Prefix',
    'StartAfter',
    'ContinuationToken',
    'NextContinuationToken',
    'KeyCount',
    'MaxKeys',
    'Delimiter',
    'EncodingType',
    'IsTruncated',
    'Contents',
    'Contents',
  ])
  t.same(
    namesAt(full, 'Contents'),
    ['Key', 'LastModified', 'ETag', 'Size', 'Owner', 'StorageClass'],
    'Owner with fetch-owner',
  )
  t.notOk(
    listObjectsV2Xml({
      bucket: 'b',
      maxKeys: 1,
      isTruncated: false,
      contents: [{ ...happyface, owner: { id: 'o' } }],
      commonPrefixes: [],
    }).includes('<Owner>'),
    'no Owner without fetch-owner, even when the caller has one',
  )
  t.notOk(
    listObjectsV2Xml({
      bucket: 'b',
      maxKeys: 1,
      delimiter: '',
      isTruncated: false,
      contents: [],
      commonPrefixes: [],
    }).includes('Delimiter'),
    'an empty delimiter is not echoed',
  )
})

t.test('listObjectVersionsXml', async (t) => {
  const owner: Owner = { id: AWS_ID }
  const etag = '"396fefef536d5ce46c7537ecf978a360"'
  const truncated = listObjectVersionsXml({
    bucket: 'mtp-versioning-fresh',
    keyMarker: 'key3',
    versionIdMarker: 'null',
    nextKeyMarker: 'key3',
    nextVersionIdMarker: 'd-d309mfjFrUmoQ0DBsVqmcMV15OI.',
    maxKeys: 3,
    isTruncated: true,
    versions: [
      {
        key: 'key3',
        versionId: '8XECiENpj8pydEDJdd-_VRrvaGKAHOaGMNW7tg6UViI.',
        isLatest: false,
        lastModified: date('2009-12-09T00:18:23.000Z'),
        etag,
        size: 217,
        owner,
      },
      {
        key: 'key3',
        versionId: 'd-d309mfjFri40QYukDozqBt3UmoQ0DBsVqmcMV15OI.',
        isLatest: false,
        lastModified: date('2009-12-09T00:18:08.000Z'),
        etag,
        size: 217,
        owner,
      },
    ],
    commonPrefixes: [],
  })
  t.ok(startsAsAws(truncated, 'ListVersionsResult'), 'ListVersionsResult starts as AWS writes it')
  t.same(
    shape(truncated),
    shape(`<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>mtp-versioning-fresh</Name>
  <Prefix/>
  <KeyMarker>key3</KeyMarker>
  <VersionIdMarker>null</VersionIdMarker>
  <NextKeyMarker>key3</NextKeyMarker>
  <NextVersionIdMarker>d-d309mfjFrUmoQ0DBsVqmcMV15OI.</NextVersionIdMarker>
  <MaxKeys>3</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Version>
    <Key>key3</Key>
    <VersionId>8XECiENpj8pydEDJdd-_VRrvaGKAHOaGMNW7tg6UViI.</VersionId>
    <IsLatest>false</IsLatest>
    <LastModified>2009-12-09T00:18:23.000Z</LastModified>
    <ETag>"396fefef536d5ce46c7537ecf978a360"</ETag>
    <Size>217</Size>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
  </Version>
  <Version>
    <Key>key3</Key>
    <VersionId>d-d309mfjFri40QYukDozqBt3UmoQ0DBsVqmcMV15OI.</VersionId>
    <IsLatest>false</IsLatest>
    <LastModified>2009-12-09T00:18:08.000Z</LastModified>
    <ETag>"396fefef536d5ce46c7537ecf978a360"</ETag>
    <Size>217</Size>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
  </Version>
</ListVersionsResult>`),
    "AWS's key-marker, version-id-marker and max-keys sample",
  )

  const interleaved = listObjectVersionsXml({
    bucket: 'mtp-versioning-fresh',
    keyMarker: 'key3',
    versionIdMarker: 't46ZenlYTZBnj',
    maxKeys: 1000,
    isTruncated: false,
    versions: [
      {
        deleteMarker: true,
        key: 'sourcekey',
        versionId: 'qDhprLU80sAlCFLu2DWgXAEDgKzWarn-HS_JU0TvYqs.',
        isLatest: true,
        lastModified: date('2009-12-10T16:38:11.000Z'),
        owner,
      },
      {
        key: 'sourcekey',
        versionId: 'wxxQ7ezLaL5JN2Sislq66Syxxo0k7uHTUpb9qiiMxNg.',
        isLatest: false,
        lastModified: date('2009-12-10T16:37:44.000Z'),
        etag,
        size: 217,
        owner,
      },
    ],
    commonPrefixes: [],
  })
  t.same(
    shape(interleaved),
    shape(`<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>mtp-versioning-fresh</Name>
  <Prefix/>
  <KeyMarker>key3</KeyMarker>
  <VersionIdMarker>t46ZenlYTZBnj</VersionIdMarker>
  <MaxKeys>1000</MaxKeys>
  <IsTruncated>false</IsTruncated>
  <DeleteMarker>
    <Key>sourcekey</Key>
    <VersionId>qDhprLU80sAlCFLu2DWgXAEDgKzWarn-HS_JU0TvYqs.</VersionId>
    <IsLatest>true</IsLatest>
    <LastModified>2009-12-10T16:38:11.000Z</LastModified>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
    </Owner>
  </DeleteMarker>
  <Version>
    <Key>sourcekey</Key>
    <VersionId>wxxQ7ezLaL5JN2Sislq66Syxxo0k7uHTUpb9qiiMxNg.</VersionId>
    <IsLatest>false</IsLatest>
    <LastModified>2009-12-10T16:37:44.000Z</LastModified>
    <ETag>"396fefef536d5ce46c7537ecf978a360"</ETag>
    <Size>217</Size>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
  </Version>
</ListVersionsResult>`),
    "AWS's sample: a delete marker, newest first, then the version under it",
  )

  t.same(
    shape(
      listObjectVersionsXml({
        bucket: 'example-bucket',
        prefix: 'photos/2006/',
        maxKeys: 1000,
        delimiter: '/',
        isTruncated: false,
        versions: [],
        commonPrefixes: ['photos/2006/February/', 'photos/2006/January/', 'photos/2006/March/'],
      }),
    ),
    shape(`<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix>photos/2006/</Prefix>
  <KeyMarker></KeyMarker>
  <VersionIdMarker></VersionIdMarker>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>false</IsTruncated>
  <CommonPrefixes>
    <Prefix>photos/2006/February/</Prefix>
  </CommonPrefixes>
  <CommonPrefixes>
    <Prefix>photos/2006/January/</Prefix>
  </CommonPrefixes>
  <CommonPrefixes>
    <Prefix>photos/2006/March/</Prefix>
  </CommonPrefixes>
</ListVersionsResult>`),
    "AWS's prefix and delimiter sample",
  )

  const withChecksum = shape(
    listObjectVersionsXml({
      bucket: 'b',
      maxKeys: 1,
      delimiter: '/',
      isTruncated: false,
      encodingType: 'url',
      versions: [
        {
          deleteMarker: false,
          key: 'k',
          versionId: 'null',
          isLatest: true,
          lastModified: date('2024-01-01T00:00:00Z'),
          etag: 'e',
          size: 0,
          checksumAlgorithm: 'CRC32',
          checksumType: 'FULL_OBJECT',
          owner: { id: 'o' },
          storageClass: 'STANDARD_IA',
        },
      ],
      commonPrefixes: [],
    }),
  )
  t.same(namesAt(withChecksum), [
    'Name',
    'Prefix',
    'KeyMarker',
    'VersionIdMarker',
    'MaxKeys',
    'Delimiter',
    'EncodingType',
    'IsTruncated',
    'Version',
  ])
  t.same(namesAt(withChecksum, 'Version'), [
    'Key',
    'VersionId',
    'IsLatest',
    'LastModified',
    'ETag',
    'ChecksumAlgorithm',
    'ChecksumType',
    'Size',
    'Owner',
    'StorageClass',
  ])
  t.equal(textAt(withChecksum, 'Version', 'StorageClass'), 'STANDARD_IA')
})

t.test('url encoding-type encodes exactly the fields AWS encodes', async (t) => {
  const odd = 'a b+c/ü&<'
  const enc = encodeKeyForList(odd, 'url')
  t.equal(enc, 'a+b%2Bc/%C3%BC%26%3C')
  const object = { key: odd, lastModified: date('2024-01-01T00:00:00Z'), etag: 'e', size: 1 }

  const v1 = shape(
    listObjectsV1Xml({
      bucket: 'bucket.name',
      prefix: odd,
      marker: odd,
      nextMarker: odd,
      maxKeys: 1,
      delimiter: '&',
      isTruncated: true,
      encodingType: 'url',
      contents: [{ ...object, owner: { id: 'o' } }],
      commonPrefixes: [odd],
    }),
  )
  t.equal(textAt(v1, 'Name'), 'bucket.name')
  for (const field of ['Prefix', 'Marker', 'NextMarker']) t.equal(textAt(v1, field), enc, field)
  t.equal(textAt(v1, 'Delimiter'), '%26')
  t.equal(textAt(v1, 'EncodingType'), 'url')
  t.equal(textAt(v1, 'Contents', 'Key'), enc)
  t.equal(textAt(v1, 'CommonPrefixes', 'Prefix'), enc)

  const v2 = shape(
    listObjectsV2Xml({
      bucket: 'b',
      prefix: odd,
      startAfter: odd,
      continuationToken: 'a+b/c=',
      nextContinuationToken: 'd+e/f=',
      maxKeys: 1,
      delimiter: '&',
      isTruncated: true,
      encodingType: 'url',
      contents: [object],
      commonPrefixes: [odd],
    }),
  )
  for (const field of ['Prefix', 'StartAfter']) t.equal(textAt(v2, field), enc, field)
  t.equal(textAt(v2, 'ContinuationToken'), 'a+b/c=', 'tokens are opaque, not encoded')
  t.equal(textAt(v2, 'NextContinuationToken'), 'd+e/f=')
  t.equal(textAt(v2, 'Delimiter'), '%26')
  t.equal(textAt(v2, 'Contents', 'Key'), enc)
  t.equal(textAt(v2, 'CommonPrefixes', 'Prefix'), enc)

  const versions = shape(
    listObjectVersionsXml({
      bucket: 'b',
      prefix: odd,
      keyMarker: odd,
      versionIdMarker: 'v+1',
      nextKeyMarker: odd,
      nextVersionIdMarker: 'v+2',
      maxKeys: 2,
      delimiter: '&',
      isTruncated: true,
      encodingType: 'url',
      versions: [
        { ...object, versionId: 'v+3', isLatest: true, owner: { id: 'o' } },
        {
          deleteMarker: true,
          key: odd,
          versionId: 'v+4',
          isLatest: false,
          lastModified: object.lastModified,
          owner: { id: 'o' },
        },
      ],
      commonPrefixes: [odd],
    }),
  )
  for (const field of ['Prefix', 'KeyMarker', 'NextKeyMarker']) {
    t.equal(textAt(versions, field), enc, field)
  }
  t.equal(textAt(versions, 'VersionIdMarker'), 'v+1', 'version IDs are not encoded')
  t.equal(textAt(versions, 'NextVersionIdMarker'), 'v+2')
  t.equal(textAt(versions, 'Delimiter'), '%26')
  t.equal(textAt(versions, 'Version', 'Key'), enc)
  t.equal(textAt(versions, 'Version', 'VersionId'), 'v+3')
  t.equal(textAt(versions, 'DeleteMarker', 'Key'), enc)
  t.equal(textAt(versions, 'CommonPrefixes', 'Prefix'), enc)

  const uploads = shape(
    listMultipartUploadsXml({
      bucket: 'b',
      keyMarker: odd,
      uploadIdMarker: 'u+1',
      nextKeyMarker: odd,
      nextUploadIdMarker: 'u+2',
      prefix: odd,
      delimiter: '&',
      maxUploads: 1,
      isTruncated: true,
      encodingType: 'url',
      uploads: [
        {
          key: odd,
          uploadId: 'u+3',
          initiator: { id: 'o' },
          owner: { id: 'o' },
          initiated: object.lastModified,
        },
      ],
      commonPrefixes: [odd],
    }),
  )
  for (const field of ['KeyMarker', 'NextKeyMarker', 'Prefix']) {
    t.equal(textAt(uploads, field), enc, field)
  }
  t.equal(textAt(uploads, 'UploadIdMarker'), 'u+1', 'upload IDs are not encoded')
  t.equal(textAt(uploads, 'NextUploadIdMarker'), 'u+2')
  t.equal(textAt(uploads, 'Delimiter'), '%26')
  t.equal(textAt(uploads, 'Upload', 'Key'), enc)
  t.equal(textAt(uploads, 'Upload', 'UploadId'), 'u+3')
  t.equal(textAt(uploads, 'CommonPrefixes', 'Prefix'), enc)
  t.equal(textAt(uploads, 'EncodingType'), 'url')
})

t.test('keys round-trip through the XML of every listing', async (t) => {
  const keys = [
    `a<b>&"'c`,
    '  leading and trailing  ',
    'line\nbreak\ttab',
    'carriage\rreturn\r\nCRLF',
    'ключ/键/🙂/é (e + combining: é)',
    ']]>not-cdata',
    '&amp; is not an entity here',
  ]
  for (const key of keys) {
    const object = { key, lastModified: date('2024-01-01T00:00:00Z'), etag: 'e', size: 1 }
    const v2 = shape(
      listObjectsV2Xml({
        bucket: 'b',
        prefix: key,
        startAfter: key,
        maxKeys: 1,
        isTruncated: false,
        contents: [object],
        commonPrefixes: [key],
      }),
    )
    t.equal(textAt(v2, 'Contents', 'Key'), key, `V2 Key ${JSON.stringify(key)}`)
    t.equal(textAt(v2, 'Prefix'), key, 'V2 Prefix')
    t.equal(textAt(v2, 'StartAfter'), key, 'V2 StartAfter')
    t.equal(textAt(v2, 'CommonPrefixes', 'Prefix'), key, 'V2 CommonPrefixes')
    const v1 = shape(
      listObjectsV1Xml({
        bucket: 'b',
        marker: key,
        maxKeys: 1,
        isTruncated: false,
        contents: [{ ...object, owner: { id: 'o' } }],
        commonPrefixes: [],
      }),
    )
    t.equal(textAt(v1, 'Marker'), key, 'V1 Marker')
    const deleted = shape(
      deleteResultXml({
        deleted: [{ key }],
        errors: [{ key, code: 'AccessDenied', message: 'Access Denied' }],
        quiet: false,
      }),
    )
    t.equal(textAt(deleted, 'Deleted', 'Key'), key, 'DeleteResult')
    t.equal(textAt(deleted, 'Error', 'Key'), key, 'DeleteResult error')
    // And back in through the request parser, as a client would echo it.
    const body = `<Delete><Object><Key>${xmlEscape(key)}</Key></Object></Delete>`
    t.equal(parseDelete(body).objects[0]?.key, key, 'parseDelete reads what xmlEscape wrote')
  }
  const control = listObjectsV2Xml({
    bucket: 'b',
    maxKeys: 1,
    isTruncated: false,
    contents: [{ key: 'a\u0001b', lastModified: date('2024-01-01T00:00:00Z'), etag: 'e', size: 1 }],
    commonPrefixes: [],
  })
  t.ok(control.includes('<Key>a&#1;b</Key>'), 'a key XML 1.0 cannot carry, as a reference')
})

t.test('copy and multipart results', async (t) => {
  const copy = copyObjectResultXml({
    etag: '9b2cf535f27731c974343645a3985328',
    lastModified: date('2009-10-28T22:32:00.000Z'),
  })
  t.ok(startsAsAws(copy, 'CopyObjectResult'), 'CopyObjectResult starts as AWS writes it')
  t.same(
    shape(copy),
    shape(`<CopyObjectResult>
   <LastModified>2009-10-28T22:32:00.000Z</LastModified>
   <ETag>"9b2cf535f27731c974343645a3985328"</ETag>
</CopyObjectResult>`),
    "AWS's sample (its time written with milliseconds, as every other sample writes times)",
  )
  const copyWithChecksums = shape(
    copyObjectResultXml({
      etag: 'e',
      lastModified: date('2024-01-01T00:00:00Z'),
      checksumType: 'FULL_OBJECT',
      checksums: { SHA256: 's', CRC32: 'c' },
    }),
  )
  t.same(namesAt(copyWithChecksums), [
    'LastModified',
    'ETag',
    'ChecksumType',
    'ChecksumCRC32',
    'ChecksumSHA256',
  ])

  const part = copyPartResultXml({
    etag: '"9b2cf535f27731c974343645a3985328"',
    lastModified: date('2009-10-28T22:32:00.000Z'),
    checksums: { CRC32C: 'x' },
  })
  t.ok(startsAsAws(part, 'CopyPartResult'), 'CopyPartResult starts as AWS writes it')
  t.same(shape(part), [
    'CopyPartResult',
    [
      ['LastModified', '2009-10-28T22:32:00.000Z'],
      ['ETag', '"9b2cf535f27731c974343645a3985328"'],
      ['ChecksumCRC32C', 'x'],
    ],
  ])

  const initiate = initiateMultipartUploadXml({
    bucket: 'example-bucket',
    key: 'example-object',
    uploadId: 'VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA',
  })
  t.ok(
    startsAsAws(initiate, 'InitiateMultipartUploadResult'),
    'InitiateMultipartUploadResult starts as AWS writes it',
  )
  t.same(
    shape(initiate),
    shape(`<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>`),
  )

  const complete = completeMultipartUploadXml({
    location: 'http://Example-Bucket.s3.Region.amazonaws.com/Example-Object',
    bucket: 'Example-Bucket',
    key: 'Example-Object',
    etag: '3858f62230ac3c915f300c664312c11f-9',
  })
  t.ok(
    startsAsAws(complete, 'CompleteMultipartUploadResult'),
    'CompleteMultipartUploadResult starts as AWS writes it',
  )
  t.same(
    shape(complete),
    shape(`<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
 <Location>http://Example-Bucket.s3.Region.amazonaws.com/Example-Object</Location>
 <Bucket>Example-Bucket</Bucket>
 <Key>Example-Object</Key>
 <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
</CompleteMultipartUploadResult>`),
  )
  t.same(
    namesAt(
      shape(
        completeMultipartUploadXml({
          location: 'l',
          bucket: 'b',
          key: 'k',
          etag: 'e-2',
          checksums: { CRC64NVME: 'n', CRC32: 'c', SHA1: 's' },
          checksumType: 'COMPOSITE',
        }),
      ),
    ),
    [
      'Location',
      'Bucket',
      'Key',
      'ETag',
      'ChecksumCRC32',
      'ChecksumCRC64NVME',
      'ChecksumSHA1',
      'ChecksumType',
    ],
  )
})

t.test('listPartsXml', async (t) => {
  const doc = listPartsXml({
    bucket: 'example-bucket',
    key: 'example-object',
    uploadId: 'XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA',
    partNumberMarker: 1,
    nextPartNumberMarker: 3,
    maxParts: 2,
    isTruncated: true,
    parts: [
      {
        partNumber: 2,
        lastModified: date('2010-11-10T20:48:34.000Z'),
        etag: '7778aef83f66abc1fa1e8477f296d394',
        size: 10485760,
      },
      {
        partNumber: 3,
        lastModified: date('2010-11-10T20:48:33.000Z'),
        etag: '"aaaa18db4cc2f85cedef654fccc4a4x8"',
        size: 10485760,
      },
    ],
    initiator: {
      id: 'arn:aws:iam::111122223333:user/some-user-11116a31-17b5-4fb7-9df5-b288870f11xx',
      displayName: 'umat-user-11116a31-17b5-4fb7-9df5-b288870f11xx',
    },
    owner: { id: AWS_ID, displayName: 'someName' },
  })
  t.ok(startsAsAws(doc, 'ListPartsResult'), 'ListPartsResult starts as AWS writes it')
  // AWS's sample puts Initiator, Owner and StorageClass first; live answers put them after the
  // parts. Same elements either way.
  t.same(
    leaves(shape(doc)),
    leaves(
      shape(`<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>example-object</Key>
  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>
  <Initiator>
      <ID>arn:aws:iam::111122223333:user/some-user-11116a31-17b5-4fb7-9df5-b288870f11xx</ID>
      <DisplayName>umat-user-11116a31-17b5-4fb7-9df5-b288870f11xx</DisplayName>
  </Initiator>
  <Owner>
    <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
    <DisplayName>someName</DisplayName>
  </Owner>
  <StorageClass>STANDARD</StorageClass>
  <PartNumberMarker>1</PartNumberMarker>
  <NextPartNumberMarker>3</NextPartNumberMarker>
  <MaxParts>2</MaxParts>
  <IsTruncated>true</IsTruncated>
  <Part>
    <PartNumber>2</PartNumber>
    <LastModified>2010-11-10T20:48:34.000Z</LastModified>
    <ETag>"7778aef83f66abc1fa1e8477f296d394"</ETag>
    <Size>10485760</Size>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <LastModified>2010-11-10T20:48:33.000Z</LastModified>
    <ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag>
    <Size>10485760</Size>
  </Part>
</ListPartsResult>`),
    ),
    "AWS's sample, as a set of elements",
  )
  t.same(namesAt(shape(doc)), [
    'Bucket',
    'Key',
    'UploadId',
    'PartNumberMarker',
    'NextPartNumberMarker',
    'MaxParts',
    'IsTruncated',
    'Part',
    'Part',
    'Initiator',
    'Owner',
    'StorageClass',
  ])
  const withChecksums = shape(
    listPartsXml({
      bucket: 'b',
      key: 'k',
      uploadId: 'u',
      maxParts: 1000,
      isTruncated: false,
      parts: [
        {
          partNumber: 1,
          lastModified: date('2024-01-01T00:00:00Z'),
          etag: 'e',
          size: 5,
          checksums: { CRC32C: 'c' },
        },
      ],
      initiator: { id: 'i' },
      owner: { id: 'o' },
      checksumAlgorithm: 'CRC32C',
      checksumType: 'COMPOSITE',
    }),
  )
  t.equal(textAt(withChecksums, 'PartNumberMarker'), '0', 'marker 0 when none was sent')
  t.same(namesAt(withChecksums, 'Part'), [
    'PartNumber',
    'LastModified',
    'ETag',
    'Size',
    'ChecksumCRC32C',
  ])
  t.same(namesAt(withChecksums).slice(-5), [
    'Initiator',
    'Owner',
    'StorageClass',
    'ChecksumAlgorithm',
    'ChecksumType',
  ])
})

t.test('listMultipartUploadsXml', async (t) => {
  const initiator = {
    id: 'arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de',
    displayName: 'user1-11111a31-17b5-4fb7-9df5-b111111f13de',
  }
  const owner = { id: AWS_ID, displayName: 'OwnerDisplayName' }
  const doc = listMultipartUploadsXml({
    bucket: 'bucket',
    nextKeyMarker: 'my-movie.m2ts',
    nextUploadIdMarker: 'YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ',
    maxUploads: 3,
    isTruncated: true,
    uploads: [
      {
        key: 'my-divisor',
        uploadId: 'XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw',
        initiator,
        owner,
        initiated: date('2010-11-10T20:48:33.000Z'),
      },
    ],
    commonPrefixes: [],
  })
  t.ok(
    startsAsAws(doc, 'ListMultipartUploadsResult'),
    'ListMultipartUploadsResult starts as AWS writes it',
  )
  t.same(
    shape(doc),
    shape(`<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>3</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <Initiator>
      <ID>arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de</ID>
      <DisplayName>user1-11111a31-17b5-4fb7-9df5-b111111f13de</DisplayName>
    </Initiator>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>OwnerDisplayName</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
</ListMultipartUploadsResult>`),
    "AWS's max-uploads sample (first upload)",
  )
  t.same(
    shape(
      listMultipartUploadsXml({
        bucket: 'example-bucket',
        prefix: 'photos/2006/',
        delimiter: '/',
        maxUploads: 1000,
        isTruncated: false,
        uploads: [],
        commonPrefixes: ['photos/2006/February/', 'photos/2006/January/', 'photos/2006/March/'],
      }),
    ),
    shape(`<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <KeyMarker/>
  <UploadIdMarker/>
  <NextKeyMarker/>
  <NextUploadIdMarker/>
  <Delimiter>/</Delimiter>
  <Prefix>photos/2006/</Prefix>
  <MaxUploads>1000</MaxUploads>
  <IsTruncated>false</IsTruncated>
  <CommonPrefixes>
    <Prefix>photos/2006/February/</Prefix>
  </CommonPrefixes>
  <CommonPrefixes>
    <Prefix>photos/2006/January/</Prefix>
  </CommonPrefixes>
  <CommonPrefixes>
    <Prefix>photos/2006/March/</Prefix>
  </CommonPrefixes>
</ListMultipartUploadsResult>`),
    "AWS's prefix and delimiter sample",
  )
  t.same(
    namesAt(
      shape(
        listMultipartUploadsXml({
          bucket: 'b',
          prefix: '',
          maxUploads: 1,
          isTruncated: false,
          encodingType: 'url',
          uploads: [
            {
              key: 'k',
              uploadId: 'u',
              initiator: { id: 'i' },
              owner: { id: 'o' },
              initiated: date('2024-01-01T00:00:00Z'),
              checksumAlgorithm: 'SHA256',
            },
          ],
          commonPrefixes: ['c/'],
        }),
      ),
    ),
    [
      'Bucket',
      'KeyMarker',
      'UploadIdMarker',
      'NextKeyMarker',
      'NextUploadIdMarker',
      'Prefix',
      'MaxUploads',
      'IsTruncated',
      'Upload',
      'CommonPrefixes',
      'EncodingType',
    ],
  )
})

t.test('deleteResultXml', async (t) => {
  const doc = deleteResultXml({
    deleted: [{ key: 'sample1.txt' }],
    errors: [{ key: 'sample2.txt', code: 'AccessDenied', message: 'Access Denied' }],
    quiet: false,
  })
  t.ok(startsAsAws(doc, 'DeleteResult'), 'DeleteResult starts as AWS writes it')
  t.same(
    shape(doc),
    shape(`<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted>
    <Key>sample1.txt</Key>
  </Deleted>
  <Error>
    <Key>sample2.txt</Key>
    <Code>AccessDenied</Code>
    <Message>Access Denied</Message>
  </Error>
</DeleteResult>`),
    "AWS's sample",
  )
  t.same(
    shape(
      deleteResultXml({
        deleted: [
          { key: 'SampleDocument.txt', versionId: 'OYcLXagmS.WaD..oyH4KRguB95_YhLs7' },
          {
            key: 'SampleDocument.txt',
            deleteMarker: true,
            deleteMarkerVersionId: 'NeQt5xeFTfgPJD8B4CGWnkSLtluMr11s',
          },
        ],
        errors: [],
        quiet: false,
      }),
    ),
    shape(`<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted>
    <Key>SampleDocument.txt</Key>
    <VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId>
  </Deleted>
  <Deleted>
    <Key>SampleDocument.txt</Key>
    <DeleteMarker>true</DeleteMarker>
    <DeleteMarkerVersionId>NeQt5xeFTfgPJD8B4CGWnkSLtluMr11s</DeleteMarkerVersionId>
  </Deleted>
</DeleteResult>`),
    "AWS's versioned samples",
  )
  const quiet = shape(
    deleteResultXml({
      deleted: [{ key: 'a' }],
      errors: [{ key: 'b', versionId: 'v', code: 'InternalError', message: 'x' }],
      quiet: true,
    }),
  )
  t.same(namesAt(quiet), ['Error'], 'quiet reports only errors')
  t.same(namesAt(quiet, 'Error'), ['Key', 'VersionId', 'Code', 'Message'])
  t.same(shape(deleteResultXml({ deleted: [{ key: 'a' }], errors: [], quiet: true })), [
    'DeleteResult',
    '',
  ])
})

t.test('parseCreateBucketConfiguration', async (t) => {
  t.same(
    parseCreateBucketConfiguration(`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <LocationConstraint>Europe</LocationConstraint>
</CreateBucketConfiguration >`),
    { locationConstraint: 'Europe' },
    "AWS's sample",
  )
  t.same(
    parseCreateBucketConfiguration(
      Buffer.from(
        '<?xml version="1.0" encoding="UTF-8"?><CreateBucketConfiguration><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>',
      ),
    ),
    { locationConstraint: 'eu-west-1' },
    'bytes, without a namespace',
  )
  t.same(parseCreateBucketConfiguration(''), {}, 'an empty body asks for nothing')
  t.same(parseCreateBucketConfiguration(Buffer.alloc(0)), {})
  t.same(parseCreateBucketConfiguration(' \n'), {})
  t.same(
    parseCreateBucketConfiguration('<CreateBucketConfiguration/>'),
    {},
    'no LocationConstraint',
  )
  t.same(
    parseCreateBucketConfiguration(
      '<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>',
    ),
    { locationConstraint: '' },
    'an empty LocationConstraint is kept for the caller to judge',
  )
  t.same(
    parseCreateBucketConfiguration(`<CreateBucketConfiguration>
  <Location><Name>usw2-az1</Name><Type>AvailabilityZone</Type></Location>
  <Bucket><DataRedundancy>SingleAvailabilityZone</DataRedundancy><Type>Directory</Type></Bucket>
</CreateBucketConfiguration>`),
    {},
    'directory-bucket elements are accepted',
  )
  for (const [why, body] of [
    ['a wrong root', '<CreateBucket><LocationConstraint>x</LocationConstraint></CreateBucket>'],
    [
      'an unknown element',
      '<CreateBucketConfiguration><Region>x</Region></CreateBucketConfiguration>',
    ],
    [
      'LocationConstraint twice',
      '<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint><LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>',
    ],
    ['not XML', 'eu-west-1'],
    ['unclosed', '<CreateBucketConfiguration><LocationConstraint>x</LocationConstraint>'],
  ] as const) {
    t.equal(
      s3Code(() => parseCreateBucketConfiguration(body)),
      'MalformedXML',
      why,
    )
  }
})

t.test('parseVersioningConfiguration', async (t) => {
  t.same(
    parseVersioningConfiguration(`<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Status>Enabled</Status>
</VersioningConfiguration>`),
    { status: 'Enabled' },
    "AWS's sample",
  )
  t.same(
    parseVersioningConfiguration(`<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Status>Suspended</Status>
</VersioningConfiguration>`),
    { status: 'Suspended' },
  )
  t.same(
    parseVersioningConfiguration(`<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Status>Enabled</Status>
  <MfaDelete>Enabled</MfaDelete>
</VersioningConfiguration>`),
    { status: 'Enabled', mfaDelete: 'Enabled' },
    "AWS's MFA delete sample",
  )
  t.equal(
    s3Code(() => parseVersioningConfiguration('')),
    'MissingRequestBodyError',
  )
  for (const [why, body] of [
    [
      'Status Disabled',
      '<VersioningConfiguration><Status>Disabled</Status></VersioningConfiguration>',
    ],
    [
      'Status in lower case',
      '<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>',
    ],
    ['no Status', '<VersioningConfiguration></VersioningConfiguration>'],
    ['an empty Status', '<VersioningConfiguration><Status/></VersioningConfiguration>'],
    [
      'MfaDelete Suspended',
      '<VersioningConfiguration><Status>Enabled</Status><MfaDelete>Suspended</MfaDelete></VersioningConfiguration>',
    ],
    ['a wrong root', '<Versioning><Status>Enabled</Status></Versioning>'],
    ['a blank body', '   '],
  ] as const) {
    t.equal(
      s3Code(() => parseVersioningConfiguration(body)),
      'MalformedXML',
      why,
    )
  }
})

function tagging(tags: readonly (readonly [string, string])[]): string {
  const tagXml = tags
    .map(([k, v]) => `<Tag><Key>${xmlEscape(k)}</Key><Value>${xmlEscape(v)}</Value></Tag>`)
    .join('')
  return `<Tagging xmlns="${S3_XMLNS}"><TagSet>${tagXml}</TagSet></Tagging>`
}

t.test('parseTagging', async (t) => {
  const objectLimit = { maxTags: MAX_OBJECT_TAGS }
  const bucketLimit = { maxTags: MAX_BUCKET_TAGS, resource: 'bucket' } as const
  t.same(
    parseTagging(
      `<Tagging>
  <TagSet>
     <Tag>
       <Key>tag1</Key>
       <Value>val1</Value>
     </Tag>
     <Tag>
       <Key>tag2</Key>
       <Value>val2</Value>
     </Tag>
  </TagSet>
</Tagging>`,
      objectLimit,
    ),
    [
      { key: 'tag1', value: 'val1' },
      { key: 'tag2', value: 'val2' },
    ],
    "AWS's PutObjectTagging sample",
  )
  t.same(
    parseTagging(
      `<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <TagSet>
    <Tag>
      <Key>Project</Key>
      <Value>Project One</Value>
    </Tag>
    <Tag>
      <Key>User</Key>
      <Value>jsmith</Value>
    </Tag>
  </TagSet>
</Tagging>`,
      bucketLimit,
    ),
    [
      { key: 'Project', value: 'Project One' },
      { key: 'User', value: 'jsmith' },
    ],
    "AWS's PutBucketTagging sample",
  )
  t.same(parseTagging('<Tagging><TagSet/></Tagging>', objectLimit), [], 'an empty TagSet')
  t.same(
    parseTagging(
      '<Tagging><TagSet><Tag><Key>a&amp;b &lt;c&gt; &#x1F600;</Key><Value/></Tag></TagSet></Tagging>',
      objectLimit,
    ),
    [{ key: 'a&b <c> 😀', value: '' }],
    'references decoded; an empty value is allowed',
  )

  const many = (n: number) => Array.from({ length: n }, (_, i) => [`k${i}`, `v${i}`] as const)
  t.equal(parseTagging(tagging(many(10)), objectLimit).length, 10, '10 object tags')
  t.equal(
    s3Code(() => parseTagging(tagging(many(11)), objectLimit)),
    'InvalidTag',
  )
  t.equal(
    s3Message(() => parseTagging(tagging(many(11)), objectLimit)),
    'Object tags cannot be greater than 10',
  )
  t.equal(parseTagging(tagging(many(50)), bucketLimit).length, 50, '50 bucket tags')
  t.equal(
    s3Code(() => parseTagging(tagging(many(51)), bucketLimit)),
    'InvalidTag',
  )

  t.equal(parseTagging(tagging([['k'.repeat(128), 'v']]), objectLimit)[0]?.key.length, 128)
  t.equal(
    parseTagging(tagging([['🙂'.repeat(128), 'v']]), objectLimit).length,
    1,
    'lengths count characters, not UTF-16 units',
  )
  t.equal(
    s3Code(() => parseTagging(tagging([['k'.repeat(129), 'v']]), objectLimit)),
    'InvalidTag',
  )
  t.equal(
    s3Message(() => parseTagging(tagging([['k'.repeat(129), 'v']]), objectLimit)),
    'The TagKey you have provided is too long, max 128',
  )
  t.equal(parseTagging(tagging([['k', 'v'.repeat(256)]]), objectLimit)[0]?.value.length, 256)
  t.equal(
    s3Code(() => parseTagging(tagging([['k', 'v'.repeat(257)]]), objectLimit)),
    'InvalidTag',
  )
  t.equal(
    s3Message(() => parseTagging(tagging([['k', 'v'.repeat(257)]]), objectLimit)),
    'The TagValue you have provided is too long, max 256',
  )
  t.equal(
    s3Code(() => parseTagging(tagging([['', 'v']]), objectLimit)),
    'InvalidTag',
    'empty key',
  )
  t.equal(
    s3Code(() => parseTagging(tagging([['aws:x', 'v']]), objectLimit)),
    'InvalidTag',
  )
  const dup = tagging([
    ['a', '1'],
    ['a', '2'],
  ])
  t.equal(
    s3Code(() => parseTagging(dup, objectLimit)),
    'InvalidTag',
  )
  t.equal(
    s3Message(() => parseTagging(dup, objectLimit)),
    'Cannot provide multiple Tags with the same key',
  )
  t.same(
    parseTagging(
      tagging([
        ['a', '1'],
        ['A', '2'],
      ]),
      objectLimit,
    ).length,
    2,
    'keys are case-sensitive',
  )

  t.equal(
    s3Code(() => parseTagging('', objectLimit)),
    'MissingRequestBodyError',
  )
  for (const [why, body] of [
    ['no TagSet', '<Tagging></Tagging>'],
    ['two TagSets', '<Tagging><TagSet/><TagSet/></Tagging>'],
    ['no Value', '<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>'],
    ['no Key', '<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>'],
    [
      'two Keys',
      '<Tagging><TagSet><Tag><Key>k</Key><Key>l</Key><Value>v</Value></Tag></TagSet></Tagging>',
    ],
    [
      'an element in Key',
      '<Tagging><TagSet><Tag><Key><b>k</b></Key><Value>v</Value></Tag></TagSet></Tagging>',
    ],
    [
      'text in TagSet',
      '<Tagging><TagSet>oops<Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>',
    ],
    ['an unknown element', '<Tagging><TagSet><Tags/></TagSet></Tagging>'],
    ['a wrong root', '<TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet>'],
  ] as const) {
    t.equal(
      s3Code(() => parseTagging(body, objectLimit)),
      'MalformedXML',
      why,
    )
  }
})

t.test('parseDelete', async (t) => {
  t.same(
    parseDelete(`<Delete>
  <Object>
    <Key>sample1.txt</Key>
  </Object>
  <Object>
    <Key>sample2.txt</Key>
  </Object>
</Delete>`),
    { quiet: false, objects: [{ key: 'sample1.txt' }, { key: 'sample2.txt' }] },
    "AWS's sample",
  )
  t.same(
    parseDelete(`<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Quiet>true</Quiet>
  <Object>
    <Key>SampleDocument.txt</Key>
    <VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId>
  </Object>
</Delete>`),
    {
      quiet: true,
      objects: [{ key: 'SampleDocument.txt', versionId: 'OYcLXagmS.WaD..oyH4KRguB95_YhLs7' }],
    },
    "AWS's versioned, quiet sample",
  )
  t.same(
    parseDelete(
      '<s3:Delete xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><s3:Object><s3:Key>k</s3:Key></s3:Object><s3:Quiet> false </s3:Quiet></s3:Delete>',
    ),
    { quiet: false, objects: [{ key: 'k' }] },
    'a namespace prefix; xs:boolean collapses whitespace',
  )
  const conditional = parseDelete(
    '<Delete><Object><Key>k</Key><ETag>"e"</ETag><LastModifiedTime>2024-01-02T03:04:05.000Z</LastModifiedTime><Size>12</Size></Object></Delete>',
  )
  t.same(conditional.objects[0], {
    key: 'k',
    etag: '"e"',
    lastModifiedTime: date('2024-01-02T03:04:05.000Z'),
    size: 12,
  })

  const keys = parseDelete(
    Buffer.from(
      '\uFEFF<Delete><Object><Key> a&amp;b&lt;c&gt;&quot;d&apos;e </Key></Object>' +
        '<Object><Key>line&#13;&#10;end&#x9;</Key></Object>' +
        '<Object><Key><![CDATA[raw &amp; <kept>]]> &amp; more</Key></Object>' +
        '<Object><Key>ключ/键/🙂</Key></Object>' +
        '<Object><Key>raw\r\nCR</Key></Object>' +
        '<Object><Key/></Object></Delete>',
    ),
  ).objects.map((o) => o.key)
  t.same(
    keys,
    [' a&b<c>"d\'e ', 'line\r\nend\t', 'raw &amp; <kept> & more', 'ключ/键/🙂', 'raw\nCR', ''],
    'bytes with a BOM; references, CDATA, Unicode, end-of-line handling, spaces kept',
  )

  const objects = (n: number) =>
    `<Delete>${Array.from({ length: n }, (_, i) => `<Object><Key>k${i}</Key></Object>`).join('')}</Delete>`
  t.equal(parseDelete(objects(1000)).objects.length, 1000, '1000 objects')
  t.equal(
    s3Code(() => parseDelete(objects(1001))),
    'MalformedXML',
    '1001 objects',
  )
  t.equal(
    s3Code(() => parseDelete(objects(0))),
    'MalformedXML',
    'no object',
  )
  t.equal(
    s3Code(() => parseDelete('')),
    'MissingRequestBodyError',
  )
  t.equal(
    s3Code(() => parseDelete(new Uint8Array(0))),
    'MissingRequestBodyError',
  )
  for (const [why, body] of [
    ['Quiet yes', '<Delete><Quiet>yes</Quiet><Object><Key>k</Key></Object></Delete>'],
    ['no Key', '<Delete><Object><VersionId>v</VersionId></Object></Delete>'],
    ['two Keys', '<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>'],
    ['text in Object', '<Delete><Object>k<Key>k</Key></Object></Delete>'],
    ['an unknown element', '<Delete><Object><Key>k</Key><Bogus/></Object></Delete>'],
    ['Size not a number', '<Delete><Object><Key>k</Key><Size>big</Size></Object></Delete>'],
    [
      'a bad time',
      '<Delete><Object><Key>k</Key><LastModifiedTime>soon</LastModifiedTime></Object></Delete>',
    ],
    ['a wrong root', '<DeleteObjects><Object><Key>k</Key></Object></DeleteObjects>'],
  ] as const) {
    t.equal(
      s3Code(() => parseDelete(body)),
      'MalformedXML',
      why,
    )
  }
})

t.test('parseCompleteMultipartUpload', async (t) => {
  t.same(
    parseCompleteMultipartUpload(`<CompleteMultipartUpload>
  <Part>
    <PartNumber>1</PartNumber>
    <ETag>"a54357aff0632cce46d942af68356b38"</ETag>
  </Part>
  <Part>
    <PartNumber>2</PartNumber>
    <ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <ETag>"acbd18db4cc2f85cedef654fccc4a4d8"</ETag>
  </Part>
</CompleteMultipartUpload>`),
    {
      parts: [
        { partNumber: 1, etag: '"a54357aff0632cce46d942af68356b38"' },
        { partNumber: 2, etag: '"0c78aef83f66abc1fa1e8477f296d394"' },
        { partNumber: 3, etag: '"acbd18db4cc2f85cedef654fccc4a4d8"' },
      ],
    },
    "AWS's sample: ETags kept as sent",
  )
  t.same(
    parseCompleteMultipartUpload(
      `<CompleteMultipartUpload xmlns="${S3_XMLNS}"><Part><ETag>&quot;x&quot;</ETag><PartNumber> 2 </PartNumber></Part><Part><PartNumber>10000</PartNumber><ETag>y</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32><ChecksumSHA256>abc=</ChecksumSHA256></Part></CompleteMultipartUpload>`,
    ),
    {
      parts: [
        { partNumber: 2, etag: '"x"' },
        { partNumber: 10000, etag: 'y', checksums: { CRC32: 'AAAAAA==', SHA256: 'abc=' } },
      ],
    },
    'with a namespace, escaped quotes, no quotes, checksums, children in any order',
  )
  const part = (n: string | number) => `<Part><PartNumber>${n}</PartNumber><ETag>e</ETag></Part>`
  const complete = (...parts: string[]) =>
    `<CompleteMultipartUpload>${parts.join('')}</CompleteMultipartUpload>`
  t.equal(
    s3Code(() => parseCompleteMultipartUpload(complete(part(2), part(1)))),
    'InvalidPartOrder',
  )
  t.equal(
    s3Code(() => parseCompleteMultipartUpload(complete(part(1), part(1)))),
    'InvalidPartOrder',
    'a part twice does not ascend',
  )
  t.equal(
    s3Code(() => parseCompleteMultipartUpload(complete(part(0)))),
    'InvalidPart',
  )
  t.equal(
    s3Code(() => parseCompleteMultipartUpload(complete(part(10001)))),
    'InvalidPart',
  )
  t.equal(
    s3Code(() => parseCompleteMultipartUpload('')),
    'MissingRequestBodyError',
  )
  for (const [why, body] of [
    ['no part', complete()],
    ['a part number that is not a number', complete(part('one'))],
    ['a negative part number', complete(part(-1))],
    ['a fractional part number', complete(part(1.5))],
    ['no ETag', complete('<Part><PartNumber>1</PartNumber></Part>')],
    ['no PartNumber', complete('<Part><ETag>e</ETag></Part>')],
    [
      'an unknown checksum',
      complete('<Part><PartNumber>1</PartNumber><ETag>e</ETag><ChecksumMD5>x</ChecksumMD5></Part>'),
    ],
    ['a wrong root', '<CompleteMultipartUploadResult><Part/></CompleteMultipartUploadResult>'],
  ] as const) {
    t.equal(
      s3Code(() => parseCompleteMultipartUpload(body)),
      'MalformedXML',
      why,
    )
  }
})

t.test('request bodies that are not well-formed, or try entities, are MalformedXML', async (t) => {
  const bodies: readonly (readonly [string, string | Uint8Array])[] = [
    [
      'a DOCTYPE with internal entities (billion laughs)',
      `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<Delete><Object><Key>&lol2;</Key></Object></Delete>`,
    ],
    [
      'a DOCTYPE with an external entity',
      '<!DOCTYPE Delete [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Delete><Object><Key>&xxe;</Key></Object></Delete>',
    ],
    ['a lower-case doctype', '<!doctype Delete><Delete><Object><Key>k</Key></Object></Delete>'],
    [
      'a DOCTYPE after a comment',
      '<!-- hi --><!DOCTYPE Delete><Delete><Object><Key>k</Key></Object></Delete>',
    ],
    ['an undeclared entity', '<Delete><Object><Key>&xxe;</Key></Object></Delete>'],
    ['an HTML entity', '<Delete><Object><Key>&nbsp;</Key></Object></Delete>'],
    ['a bare ampersand', '<Delete><Object><Key>a & b</Key></Object></Delete>'],
    ['an unterminated reference', '<Delete><Object><Key>&amp</Key></Object></Delete>'],
    ['a reference to NUL', '<Delete><Object><Key>&#0;</Key></Object></Delete>'],
    ['a reference to a control character', '<Delete><Object><Key>&#x1;</Key></Object></Delete>'],
    ['a reference to a surrogate', '<Delete><Object><Key>&#xD800;</Key></Object></Delete>'],
    ['a reference beyond Unicode', '<Delete><Object><Key>&#x110000;</Key></Object></Delete>'],
    ['a huge reference', '<Delete><Object><Key>&#99999999999999999999;</Key></Object></Delete>'],
    ['a raw control character', '<Delete><Object><Key>a\u0001b</Key></Object></Delete>'],
    [
      'invalid UTF-8',
      Uint8Array.from([
        ...Buffer.from('<Delete><Object><Key>'),
        0xff,
        0xfe,
        ...Buffer.from('</Key></Object></Delete>'),
      ]),
    ],
    ['two roots', '<Delete><Object><Key>a</Key></Object></Delete><Delete/>'],
    ['text after the root', '<Delete><Object><Key>a</Key></Object></Delete>trailing'],
    ['text before the root', 'leading<Delete><Object><Key>a</Key></Object></Delete>'],
    ['mismatched tags', '<Delete><Object><Key>a</Object></Key></Delete>'],
    ['an unclosed root', '<Delete><Object><Key>a</Key></Object>'],
    ['JSON', '{"Objects":[{"Key":"a"}]}'],
    ['a repeated attribute', '<Delete a="1" a="2"><Object><Key>k</Key></Object></Delete>'],
    ['a __proto__ element', '<Delete><__proto__><Key>k</Key></__proto__></Delete>'],
    ['a constructor element', '<Delete><constructor/><Object><Key>k</Key></Object></Delete>'],
    ['a blank body', '  \n '],
  ]
  for (const [why, body] of bodies) {
    t.equal(
      s3Code(() => parseDelete(body)),
      'MalformedXML',
      why,
    )
  }
  const nested = `<Tagging><TagSet>${'<Tag>'.repeat(500)}${'</Tag>'.repeat(500)}</TagSet></Tagging>`
  t.equal(
    s3Code(() => parseTagging(nested, { maxTags: 10 })),
    'MalformedXML',
    'deep nesting is refused, not followed',
  )
  t.same(
    parseDelete(
      '<?xml version="1.0" encoding="UTF-8"?><!-- <!DOCTYPE x> --><?pi ignored?><Delete><!-- c --><Object><Key>k<!-- in -->2</Key></Object></Delete>',
    ),
    { quiet: false, objects: [{ key: 'k2' }] },
    'comments and processing instructions are skipped',
  )
})
