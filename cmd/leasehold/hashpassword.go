package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/leasehold/leasehold/internal/secret"
)

const hashPasswordUsage = `usage: leasehold hash-password
Reads a password (or client secret) and prints its argon2id PHC string, for password_hash or
client_secret_hash in the configuration file. On a terminal it asks twice, without echo;
otherwise it reads the first line of standard input:
  printf %s 'alice-pw' | leasehold hash-password
The password is never taken as an argument, which would leave it in the shell history and
the process list.
`

// passwordInput is where hash-password reads from: the terminal (prompting on stderr, no
// echo) when stdin is one, else stdin itself.
type passwordInput struct {
	r        io.Reader
	terminal bool
	fd       int
}

func hashPassword(args []string, in passwordInput, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { _, _ = io.WriteString(stderr, hashPasswordUsage) }
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() != 0 {
		_, _ = io.WriteString(stderr, "leasehold: hash-password takes no argument\n"+hashPasswordUsage)
		return 2
	}
	var password string
	if in.terminal {
		first, err := promptNoEcho(in.fd, "Password: ", stderr)
		if err != nil {
			fmt.Fprintln(stderr, "leasehold:", err)
			return 1
		}
		again, err := promptNoEcho(in.fd, "Again: ", stderr)
		if err != nil {
			fmt.Fprintln(stderr, "leasehold:", err)
			return 1
		}
		if first != again {
			fmt.Fprintln(stderr, "leasehold: the passwords differ")
			return 1
		}
		password = first
	} else {
		line, err := bufio.NewReader(io.LimitReader(in.r, secret.MaxSecretLen+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr, "leasehold:", err)
			return 1
		}
		// `echo pw |` and a file written by an editor end with a newline that is not part
		// of the password; every other byte is.
		password = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	}
	if password == "" {
		fmt.Fprintln(stderr, "leasehold: empty password")
		return 1
	}
	phc, err := secret.Hash(password)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold:", err)
		return 1
	}
	fmt.Fprintln(stdout, phc)
	return 0
}

func promptNoEcho(fd int, prompt string, stderr io.Writer) (string, error) {
	fmt.Fprint(stderr, prompt)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	return string(b), err
}

func stdinPassword() passwordInput {
	fd := int(os.Stdin.Fd())
	return passwordInput{r: os.Stdin, terminal: term.IsTerminal(fd), fd: fd}
}
