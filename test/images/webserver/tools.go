package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// The image holds no shell and no other program, so the binary doubles as
// the commands tests run in a container (kubectl exec, attach):
//
//	webserver echo ARGS...  prints ARGS, and "stderr: ARGS" on stderr
//	webserver exit N        prints "exiting N" and exits with status N
//	webserver bytes N       prints N bytes: lines of "0123456789"
//	webserver upper         says whether stdin is a terminal, then prints
//	                        every line read from stdin in upper case until
//	                        EOF or a line "exit"
var tools = map[string]func(args []string) int{
	"echo":  echo,
	"exit":  exitWith,
	"upper": upper,
	"bytes": printBytes,
}

// runTool runs the tool named by os.Args[1], if any, and reports whether
// there was one and its exit status.
func runTool() (int, bool) {
	if len(os.Args) < 2 {
		return 0, false
	}
	tool, ok := tools[os.Args[1]]
	if !ok {
		return 0, false
	}
	return tool(os.Args[2:]), true
}

func echo(args []string) int {
	fmt.Println(strings.Join(args, " "))
	fmt.Fprintln(os.Stderr, "stderr:", strings.Join(args, " "))
	return 0
}

func exitWith(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: webserver exit N")
		return 2
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "exit:", err)
		return 2
	}
	fmt.Println("exiting", n)
	return n
}

func upper([]string) int {
	fmt.Printf("upper: tty=%t\n", isTerminal(os.Stdin))
	s := bufio.NewScanner(os.Stdin)
	for s.Scan() {
		line := strings.TrimRight(s.Text(), "\r")
		if line == "exit" {
			fmt.Println("BYE")
			return 0
		}
		fmt.Println(strings.ToUpper(line))
	}
	return 0
}

// isTerminal reports whether f is a terminal (TCGETS succeeds).
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

func printBytes(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: webserver bytes N")
		return 2
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "bytes: want a count")
		return 2
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	line := []byte("012345678\n")
	for ; n >= len(line); n -= len(line) {
		_, _ = w.Write(line)
	}
	_, _ = w.Write(line[:n])
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}
