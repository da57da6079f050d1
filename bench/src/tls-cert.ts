/**
 * A self-signed TLS certificate made in pure Node, for benchmark baselines: no X.509 builder
 * ships with Node, but an Ed25519 certificate is a few DER structures and one crypto.sign()
 * (no openssl binary needed).
 */
import {
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto'

function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts)
  let len: Buffer
  if (body.length < 0x80) len = Buffer.from([body.length])
  else {
    const bytes: number[] = []
    for (let n = body.length; n > 0; n >>= 8) bytes.unshift(n & 0xff)
    len = Buffer.from([0x80 | bytes.length, ...bytes])
  }
  return Buffer.concat([Buffer.from([tag]), len, body])
}

function utcTime(d: Date): Buffer {
  // 2026-01-02T03:04:05.678Z -> 260102030405Z (UTCTime, fine until 2050)
  const digits = d.toISOString().replace(/[-T:]/g, '').slice(2, 14)
  return der(0x17, Buffer.from(`${digits}Z`))
}

/** A fresh Ed25519 key and a self-signed certificate for it, valid for a day. */
export function selfSignedCert(): { key: KeyObject; certPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const ed25519 = der(0x30, der(0x06, Buffer.from([0x2b, 0x65, 0x70]))) // 1.3.101.112
  const name = der(
    0x30,
    der(
      0x31,
      der(
        0x30,
        der(0x06, Buffer.from([0x55, 0x04, 0x03])),
        der(0x0c, Buffer.from('tessera-bench')),
      ),
    ),
  )
  const serial = randomBytes(8)
  // Positive and minimal in DER: a leading 0x00 would be "illegal padding" (about one run in
  // 500 failed that way), a leading bit set would make it negative.
  serial[0] = (serial[0]! & 0x7f) | 0x40
  const now = Date.now()
  const tbs = der(
    0x30,
    der(0xa0, der(0x02, Buffer.from([2]))), // v3
    der(0x02, serial),
    ed25519,
    name,
    der(0x30, utcTime(new Date(now - 3600_000)), utcTime(new Date(now + 86400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
  )
  const cert = der(0x30, tbs, ed25519, der(0x03, Buffer.from([0]), sign(null, tbs, privateKey)))
  const b64 = cert.toString('base64').replace(/.{64}/g, '$&\n')
  const certPem = `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`
  if (!new X509Certificate(certPem).verify(publicKey)) throw new Error('bad self-signed cert')
  return { key: privateKey, certPem }
}
