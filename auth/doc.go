// Package auth authenticates Kafka clients: the SASL mechanisms a
// gateway speaks (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and the SCRAM
// credentials the metadata keeps for each user, salted and hashed, never
// the password itself.
//
// A SCRAM credential is what RFC 5802 has a server store: the salt, the
// iteration count, StoredKey (the hash of the client key) and ServerKey.
// PLAIN checks a password against the same credentials, so one user list
// serves every mechanism, as Redpanda does. The SCRAM exchange itself is
// github.com/xdg-go/scram's server.
package auth
