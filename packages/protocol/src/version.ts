/** Version exchanged in the hello frame; bumped on any incompatible wire change. */
export const PROTOCOL_VERSION = 2
