// Package harness runs named scenarios and prints one JSON line per scenario, for the Go programs
// of the kbroker client compatibility matrix. Usage of a program: PROG BOOTSTRAP SCENARIO... | PROG --list
package harness

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	MessageMaxBytes  = 1048588
	AtLimitValue     = MessageMaxBytes - 72
	BeyondLimitValue = MessageMaxBytes - 71
	ClientMaxRequest = 2 * 1024 * 1024
)

var Codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

type Ctx struct {
	Bootstrap, Client, Scenario string
	// RF is the replication factor of the topics a scenario creates (COMPAT_REPLICATION_FACTOR,
	// set by compat/run_matrix.py: 1 against one broker, 3 against a three-broker cluster).
	RF int16
}

// Brokers is the bootstrap list (BOOTSTRAP is host:port[,host:port...]).
func (c *Ctx) Brokers() []string { return strings.Split(c.Bootstrap, ",") }

func replicationFactor() int16 {
	raw := os.Getenv("COMPAT_REPLICATION_FACTOR")
	if raw == "" {
		return 1
	}
	rf, err := strconv.ParseInt(raw, 10, 16)
	if err != nil || rf < 1 {
		fmt.Fprintf(os.Stderr, "COMPAT_REPLICATION_FACTOR must be a positive integer, not %q\n", raw)
		os.Exit(2)
	}
	return int16(rf)
}

func suffix() string { return fmt.Sprintf("%08x", rand.Uint32()) }

func (c *Ctx) Topic() string {
	return strings.ReplaceAll(fmt.Sprintf("compat-%s-%s-%s", c.Client, c.Scenario, suffix()), "_", "-")
}

func (c *Ctx) Group() string { return fmt.Sprintf("g-%s-%s-%s", c.Client, c.Scenario, suffix()) }

type Scenario struct {
	Name string
	Run  func(*Ctx) error
}

func Check(cond bool, format string, args ...any) error {
	if !cond {
		return fmt.Errorf(format, args...)
	}
	return nil
}

// WaitUntil polls f until it returns true or the timeout passes.
func WaitUntil(f func() bool, timeout time.Duration, what string) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f() {
			return nil
		}
		time.Sleep(100 * time.Millisecond) // polling interval, bounded by the deadline
	}
	return fmt.Errorf("timed out waiting for %s", what)
}

type result struct {
	Client        string  `json:"client"`
	ClientVersion string  `json:"client_version"`
	Scenario      string  `json:"scenario"`
	OK            bool    `json:"ok"`
	Error         string  `json:"error"`
	Seconds       float64 `json:"seconds"`
}

func Main(client, version string, scenarios []Scenario) {
	args := os.Args[1:]
	if len(args) >= 1 && args[0] == "--list" {
		for _, s := range scenarios {
			fmt.Println(s.Name)
		}
		return
	}
	if len(args) >= 1 && args[0] == "--version" {
		fmt.Println(version)
		return
	}
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: PROG BOOTSTRAP SCENARIO... | PROG --list")
		os.Exit(2)
	}
	rf := replicationFactor()
	byName := map[string]Scenario{}
	for _, s := range scenarios {
		byName[s.Name] = s
	}
	enc := json.NewEncoder(os.Stdout)
	for _, name := range args[1:] {
		t0 := time.Now()
		r := result{Client: client, ClientVersion: version, Scenario: name}
		s, ok := byName[name]
		if !ok {
			r.Error = "unsupported scenario"
		} else {
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
				}()
				err = s.Run(&Ctx{Bootstrap: args[0], Client: client, Scenario: name, RF: rf})
			}()
			if err != nil {
				r.Error = err.Error()
				if len(r.Error) > 500 {
					r.Error = r.Error[:500]
				}
			} else {
				r.OK = true
			}
		}
		r.Seconds = float64(time.Since(t0).Milliseconds()) / 1000
		_ = enc.Encode(r)
	}
}

// Security is how to connect, from the environment compat/run_matrix.py sets for its SASL_SSL
// column (COMPAT_SECURITY_PROTOCOL, COMPAT_SASL_MECHANISM, COMPAT_SASL_USERNAME,
// COMPAT_SASL_PASSWORD, COMPAT_SSL_CA); nil for PLAINTEXT.
type Security struct {
	Mechanism, User, Password string
	TLS                       *tls.Config
}

func LoadSecurity() *Security {
	protocol := os.Getenv("COMPAT_SECURITY_PROTOCOL")
	if protocol == "" || protocol == "PLAINTEXT" {
		return nil
	}
	if protocol != "SASL_SSL" {
		fmt.Fprintf(os.Stderr, "COMPAT_SECURITY_PROTOCOL: only PLAINTEXT and SASL_SSL are set up, not %q\n", protocol)
		os.Exit(2)
	}
	pem, err := os.ReadFile(os.Getenv("COMPAT_SSL_CA"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "COMPAT_SSL_CA: %v\n", err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintf(os.Stderr, "COMPAT_SSL_CA: no certificate in %s\n", os.Getenv("COMPAT_SSL_CA"))
		os.Exit(2)
	}
	return &Security{
		Mechanism: os.Getenv("COMPAT_SASL_MECHANISM"),
		User:      os.Getenv("COMPAT_SASL_USERNAME"),
		Password:  os.Getenv("COMPAT_SASL_PASSWORD"),
		TLS:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
}
