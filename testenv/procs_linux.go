package testenv

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a child when the test process dies,
// however it dies: a child left running keeps its Raft port and keeps
// dialling NATS addresses a later test may hold.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
