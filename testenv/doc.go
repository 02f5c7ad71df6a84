// Package testenv starts Strata clusters for tests: in-process (embedded
// NATS, N nodes, a gateway and a tier store in one test process) and in
// Docker through testcontainers-go, from scratch images the Makefile builds.
package testenv
