// Package config reads a lifeboat.yaml file into typed structs.
//
// # Decoding
//
// The file is parsed once into a YAML syntax tree so that every problem can be
// reported as file:line:column. The top level is decoded strictly (unknown keys
// are errors). Each storage and source has a `type:` discriminator; the loader
// looks the type up in an explicit [Registry] supplied by the caller, and the
// backend's own typed Config is decoded strictly from the same node, so backend
// keys and common keys share one namespace and one set of error messages.
//
// # Secrets
//
// Secrets are never written in the file. A field of type [Secret] holds a
// reference, `${env:NAME}`, `${file:PATH}` or `${dotenv:PATH:NAME}`, that is
// resolved at load time through an injected environment lookup. The resolved
// value is redacted by String, GoString, LogValue and MarshalJSON.
//
// # Problems
//
// [Load] collects every problem it finds, not just the first, and returns them
// as [Problems], each with a position, a message and a hint.
package config
