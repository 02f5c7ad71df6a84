//go:build !linux

package testenv

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; elsewhere a test
// killed outright leaves its children to be stopped by hand.
func dieWithParent(*exec.Cmd) {}
