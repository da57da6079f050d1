/**
 * Every S3 error the gateway answers with, in one table: the code and HTTP status AWS gives for
 * the same case, and a default message. Internal errors (StoreError codes from the nodes,
 * CodecError codes) become S3 errors in one place, {@link toS3Error}; anything unknown is an
 * InternalError (500).
 */
import { isCodecError } from '@tessera/codec'
import { isStoreError } from '@tessera/protocol'

export const S3_ERRORS = {
  AccessControlListNotSupported: { status: 400, message: 'The bucket does not allow ACLs' },
  AccessDenied: { status: 403, message: 'Access Denied' },
  /** A CORS preflight that no rule of the bucket allows. */
  AccessForbidden: {
    status: 403,
    message:
      "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
  },
  AuthorizationHeaderMalformed: {
    status: 400,
    message: 'The authorization header that you provided is not valid.',
  },
  AuthorizationQueryParametersError: {
    status: 400,
    message: 'Error parsing the X-Amz-Credential parameter.',
  },
  BadRequest: { status: 400, message: 'Insufficient information. Origin request header needed.' },
  BadDigest: {
    status: 400,
    message:
      'The Content-MD5 or checksum value that you specified did not match what the server received.',
  },
  BucketAlreadyExists: {
    status: 409,
    message: 'The requested bucket name is not available. Select a different name and try again.',
  },
  BucketAlreadyOwnedByYou: {
    status: 409,
    message: 'Your previous request to create the named bucket succeeded and you already own it.',
  },
  BucketNotEmpty: { status: 409, message: 'The bucket you tried to delete is not empty.' },
  EntityTooLarge: {
    status: 400,
    message: 'Your proposed upload exceeds the maximum allowed object size.',
  },
  EntityTooSmall: {
    status: 400,
    message: 'Your proposed upload is smaller than the minimum allowed object size.',
  },
  InvalidBucketAclWithBlockPublicAccessError: {
    status: 400,
    message: 'Bucket cannot have public ACLs set with BlockPublicAccess enabled',
  },
  InvalidBucketAclWithObjectOwnership: {
    status: 400,
    message: "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
  },
  IllegalLocationConstraintException: {
    status: 400,
    message: 'The specified location constraint is not valid for this endpoint.',
  },
  IncompleteBody: {
    status: 400,
    message: 'You did not provide the number of bytes specified by the Content-Length HTTP header.',
  },
  InternalError: {
    status: 500,
    message: 'We encountered an internal error. Please try again.',
  },
  InvalidAccessKeyId: {
    status: 403,
    message: 'The AWS access key ID that you provided does not exist in our records.',
  },
  ExpiredToken: { status: 400, message: 'The provided token has expired.' },
  InvalidArgument: { status: 400, message: 'Invalid argument.' },
  InvalidBucketOwnerAWSAccountID: {
    status: 400,
    message: 'The value of the expected bucket owner parameter must be an AWS Account ID.',
  },
  InvalidBucketName: { status: 400, message: 'The specified bucket is not valid.' },
  InvalidBucketState: {
    status: 409,
    message: 'The request is not valid for the current state of the bucket.',
  },
  InvalidChunkSizeError: {
    status: 400,
    message: 'Only the last chunk is allowed to have a size less than 8192 bytes',
  },
  InvalidDigest: {
    status: 400,
    message: 'The Content-MD5 or checksum value that you specified is not valid.',
  },
  InvalidToken: {
    status: 400,
    message: 'The provided token is malformed or otherwise invalid.',
  },
  InvalidURI: { status: 400, message: "Couldn't parse the specified URI." },
  InvalidLocationConstraint: {
    status: 400,
    message: 'The specified location constraint is not valid.',
  },
  InvalidObjectState: {
    status: 403,
    message: 'The operation is not valid for the current state of the object.',
  },
  InvalidPart: {
    status: 400,
    message:
      'One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part’s entity tag.',
  },
  InvalidPartOrder: {
    status: 400,
    message: 'The list of parts was not in ascending order. Parts must be ordered by part number.',
  },
  InvalidPolicyDocument: {
    status: 400,
    message:
      'The content of the form does not meet the conditions specified in the policy document.',
  },
  InvalidRange: { status: 416, message: 'The requested range is not satisfiable.' },
  InvalidRequest: { status: 400, message: 'Invalid Request.' },
  InvalidStorageClass: {
    status: 400,
    message: 'The storage class you specified is not valid.',
  },
  InvalidTag: { status: 400, message: 'The tag provided was not a valid tag.' },
  KeyTooLongError: { status: 400, message: 'Your key is too long.' },
  MalformedACLError: {
    status: 400,
    message:
      'The XML you provided was not well-formed or did not validate against our published schema',
  },
  MalformedPolicy: { status: 400, message: 'Policies must be valid JSON.' },
  MalformedPOSTRequest: {
    status: 400,
    message: 'The body of your POST request is not well-formed multipart/form-data.',
  },
  MalformedXML: {
    status: 400,
    message:
      'The XML you provided was not well-formed or did not validate against our published schema.',
  },
  MalformedTrailerError: {
    status: 400,
    message:
      'The request contained trailing data that was not well-formed or did not conform to our published schema.',
  },
  MaxPostPreDataLengthExceededError: {
    status: 400,
    message: 'Your POST request fields preceding the upload file were too large.',
  },
  MetadataTooLarge: {
    status: 400,
    message: 'Your metadata headers exceed the maximum allowed metadata size.',
  },
  MethodNotAllowed: {
    status: 405,
    message: 'The specified method is not allowed against this resource.',
  },
  MissingContentLength: {
    status: 411,
    message: 'You must provide the Content-Length HTTP header.',
  },
  MissingRequestBodyError: { status: 400, message: 'Request Body is empty.' },
  MissingSecurityHeader: {
    status: 400,
    message: 'Your request is missing a required header.',
  },
  NoSuchBucket: { status: 404, message: 'The specified bucket does not exist.' },
  NoSuchBucketPolicy: { status: 404, message: 'The bucket policy does not exist' },
  NoSuchCORSConfiguration: { status: 404, message: 'The CORS configuration does not exist' },
  NoSuchKey: { status: 404, message: 'The specified key does not exist.' },
  NoSuchLifecycleConfiguration: {
    status: 404,
    message: 'The lifecycle configuration does not exist',
  },
  NoSuchPublicAccessBlockConfiguration: {
    status: 404,
    message: 'The public access block configuration was not found',
  },
  NoSuchTagSet: { status: 404, message: 'The TagSet does not exist.' },
  NoSuchUpload: {
    status: 404,
    message:
      'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  },
  NoSuchVersion: {
    status: 404,
    message: 'The specified version does not exist.',
  },
  OwnershipControlsNotFoundError: {
    status: 404,
    message: 'The bucket ownership controls were not found',
  },
  NotImplemented: {
    status: 501,
    message: 'A header you provided implies functionality that is not implemented.',
  },
  NotModified: { status: 304, message: 'Not Modified' },
  PreconditionFailed: {
    status: 412,
    message: 'At least one of the pre-conditions you specified did not hold.',
  },
  RequestTimeTooSkewed: {
    status: 403,
    message: 'The difference between the request time and the server’s time is too large.',
  },
  RequestTimeout: {
    status: 400,
    message:
      'Your socket connection to the server was not read from or written to within the timeout period.',
  },
  ServiceUnavailable: {
    status: 503,
    message: 'Service is unable to handle request.',
  },
  SignatureDoesNotMatch: {
    status: 403,
    message:
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  },
  SlowDown: { status: 503, message: 'Please reduce your request rate.' },
  TooManyParts: {
    status: 400,
    message: 'You have attempted to upload more than 10,000 parts.',
  },
  UnresolvableGrantByEmailAddress: {
    status: 400,
    message: 'The email address you provided does not match any account on record.',
  },
  UnexpectedContent: {
    status: 400,
    message: 'This request does not support content.',
  },
  XAmzContentSHA256Mismatch: {
    status: 400,
    message: "The provided 'x-amz-content-sha256' header does not match what was computed.",
  },
  XAmzContentChecksumMismatch: {
    status: 400,
    message: 'The provided checksum does not match what was computed.',
  },
} as const satisfies Record<string, { status: number; message: string }>

export type S3ErrorCode = keyof typeof S3_ERRORS

/** An error answered to an S3 client: code, status and message as AWS gives them. */
export class S3Error extends Error {
  readonly code: S3ErrorCode
  readonly status: number
  /** Extra elements for the error XML (for example `BucketName`, `Key`, `ArgumentName`). */
  readonly extra: Record<string, string>
  /** Headers to send with the error answer (for example `x-amz-delete-marker`). */
  readonly headers: Record<string, string>

  constructor(
    code: S3ErrorCode,
    message?: string,
    extra: Record<string, string> = {},
    options: { cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message ?? S3_ERRORS[code].message, { cause: options.cause })
    this.name = 'S3Error'
    this.code = code
    this.status = S3_ERRORS[code].status
    this.extra = extra
    this.headers = options.headers ?? {}
  }
}

export function isS3Error(err: unknown): err is S3Error {
  return err instanceof S3Error
}

/**
 * The S3 error for anything thrown while serving a request. Errors from the nodes and the
 * codec keep their meaning; the rest are InternalError, with the original kept as `cause` for
 * the log line (never for the client: internal messages may name paths).
 */
export function toS3Error(err: unknown): S3Error {
  if (isS3Error(err)) return err
  if (isStoreError(err)) {
    switch (err.code) {
      case 'BUCKET_NOT_EMPTY':
        return new S3Error('BucketNotEmpty', undefined, {}, { cause: err })
      case 'BUCKET_NOT_FOUND':
        return new S3Error('NoSuchBucket', undefined, {}, { cause: err })
      case 'UPLOAD_NOT_FOUND':
        return new S3Error('NoSuchUpload', undefined, {}, { cause: err })
      case 'BUSY':
        // The store's message for it names the object only, which the client named.
        return new S3Error('ServiceUnavailable', err.message, {}, { cause: err })
      case 'NODE_UNAVAILABLE':
      case 'QUORUM_FAILED':
      case 'DRIVE_FULL':
      case 'DRIVE_NOT_FOUND':
      case 'DRIVE_OFFLINE':
      case 'CHANNEL_CLOSED':
      case 'DEADLINE_EXCEEDED':
        return new S3Error(
          'ServiceUnavailable',
          'Not enough drives answered to serve this request; try again shortly.',
          {},
          { cause: err },
        )
      default:
        return new S3Error('InternalError', undefined, {}, { cause: err })
    }
  }
  if (isCodecError(err)) {
    if (
      err.code === 'TOO_FEW_SHARDS' ||
      err.code === 'CHECKSUM_MISMATCH' ||
      err.code === 'TRUNCATED_SHARD' ||
      err.code === 'SHARD_STALLED'
    )
      return new S3Error(
        'ServiceUnavailable',
        'Too few intact shards of this object are reachable right now; try again shortly.',
        {},
        { cause: err },
      )
    return new S3Error('InternalError', undefined, {}, { cause: err })
  }
  return new S3Error('InternalError', undefined, {}, { cause: err })
}
