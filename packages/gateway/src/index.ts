/** @packageDocumentation `@tessera/gateway`: built by its own issue; an empty shell until then. */
export {}
