/**
 * A process identity: the static Ed25519 key a node or gateway proves in every secure-channel
 * handshake, and its public id (the libp2p peer id string, `12D3KooW…`) that the cluster map
 * lists as `publicKey`. Key bytes never appear in logs or error messages.
 */
import { constants } from 'node:fs'
import { open, unlink } from 'node:fs/promises'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'

// @libp2p/crypto 5.1.23 declares its keys with @libp2p/interface 3 types, while noise and
// peer-id use @libp2p/interface 2: the runtime objects are the same and the declarations
// differ only in Uint8ArrayList generics, so the key changes type here, once each way.
type CryptoPrivateKey = Parameters<typeof privateKeyToProtobuf>[0]

/** A process's private key and the public id derived from it. */
export interface Identity {
  privateKey: PrivateKey
  /** The libp2p peer id string of the key (`12D3KooW…`), as listed in the cluster map. */
  id: string
}

/** Ways loading or saving an identity fails. */
export type IdentityErrorCode = 'IDENTITY_EXISTS' | 'IDENTITY_PERMISSIONS' | 'IDENTITY_INVALID'

/** The error of identity files; check `err.code`. */
export class IdentityError extends Error {
  static override name = 'IdentityError'
  readonly code: IdentityErrorCode
  /** The identity file concerned. */
  readonly path?: string

  constructor(code: IdentityErrorCode, message: string, where: { path?: string } = {}) {
    super(message)
    this.name = 'IdentityError'
    this.code = code
    if (where.path !== undefined) this.path = where.path
  }
}

/** Makes a new random Ed25519 identity. */
export async function generateIdentity(): Promise<Identity> {
  return toIdentity((await generateKeyPair('Ed25519')) as unknown as PrivateKey)
}

/**
 * The identity in `bytes`, a libp2p protobuf-encoded Ed25519 private key (the format of
 * {@link saveIdentity}).
 */
export function identityFromBytes(bytes: Uint8Array): Identity {
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes) as unknown as PrivateKey
  } catch {
    // The decoder's own message is left out on purpose: nothing derived from key bytes is shown.
    throw new IdentityError(
      'IDENTITY_INVALID',
      'not a libp2p protobuf private key: generate a new identity',
    )
  }
  if (key.type !== 'Ed25519') {
    throw new IdentityError(
      'IDENTITY_INVALID',
      `${key.type} identity keys are not supported: use Ed25519`,
    )
  }
  return toIdentity(key)
}

/**
 * Writes the identity's private key to a new file readable by its owner only (mode 0600).
 * Refuses to overwrite an existing file: replacing a process's key changes its id in the map.
 */
export async function saveIdentity(path: string, identity: Identity): Promise<void> {
  let file: Awaited<ReturnType<typeof open>>
  try {
    file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new IdentityError(
        'IDENTITY_EXISTS',
        `identity file ${path} already exists: refusing to overwrite it (move it away first ` +
          'if this process really needs a new identity; its id in the cluster map changes too)',
        { path },
      )
    }
    throw err
  }
  const bytes = privateKeyToProtobuf(identity.privateKey as unknown as CryptoPrivateKey)
  try {
    // The umask can only take bits away from 0600, but the mode is the point of this file.
    await file.chmod(0o600)
    await file.writeFile(bytes)
    await file.sync()
  } catch (err) {
    // A half-written key file would block the next attempt (no overwrites): remove it.
    await file.close().catch(() => {})
    await unlink(path).catch(() => {})
    throw err
  } finally {
    bytes.fill(0)
  }
  await file.close()
}

/**
 * Reads an identity written by {@link saveIdentity}. Refuses a file that group or others may
 * access in any way (like ssh with private keys): the key proves who this process is.
 */
export async function loadIdentity(path: string): Promise<Identity> {
  const file = await open(path, 'r')
  try {
    // fstat on the opened file, so the mode checked is the mode of the bytes read.
    const st = await file.stat()
    if (!st.isFile()) {
      throw new IdentityError('IDENTITY_INVALID', `identity file ${path} is not a regular file`, {
        path,
      })
    }
    const mode = st.mode & 0o777
    if ((mode & 0o077) !== 0) {
      throw new IdentityError(
        'IDENTITY_PERMISSIONS',
        `identity file ${path} has mode ${mode.toString(8).padStart(4, '0')}: group and others ` +
          `must have no access to a private key; run chmod 600 ${path}`,
        { path },
      )
    }
    const bytes = await file.readFile()
    try {
      return identityFromBytes(bytes)
    } catch (err) {
      if (err instanceof IdentityError) {
        throw new IdentityError('IDENTITY_INVALID', `identity file ${path}: ${err.message}`, {
          path,
        })
      }
      throw err
    } finally {
      bytes.fill(0)
    }
  } finally {
    await file.close()
  }
}

function toIdentity(privateKey: PrivateKey): Identity {
  return { privateKey, id: peerIdFromPrivateKey(privateKey).toString() }
}
