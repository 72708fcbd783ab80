// Command server is the grpc-go server of the stock-matrix contract (../../../../CONTRACT.md): the service of
// ../../service (stock.v1.Stock with the test hooks, proto.KV) with its flags, TLS, health and reflection.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"

	"stockmatrix/gen/kvpb"
	pb "stockmatrix/gen/stockpb"
	"stockmatrix/service"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

var (
	host     = flag.String("host", "127.0.0.1", "host to bind")
	port     = flag.Int("port", -1, "port to bind")
	tlsMode  = flag.String("tls-mode", "none", "none|server|mtls")
	certFile = flag.String("cert-file", "", "server certificate (PEM)")
	keyFile  = flag.String("key-file", "", "server key (PEM)")
	caFile   = flag.String("ca-file", "", "CA of the client certificates (PEM), mtls")
)

func main() {
	if err := parseArgs(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
	srv, err := serve()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	service.WaitForStop()
	service.Stop(srv)
}

// parseArgs reads the options; the flag package exits 2 on an unknown one.
func parseArgs() error {
	flag.Parse()
	modeOK := *tlsMode == "none" || *tlsMode == "server" || *tlsMode == "mtls"
	if *port < 0 || *port > 65535 || flag.NArg() > 0 || !modeOK {
		return errors.New("usage: server --port N [--host H] [--tls-mode none|server|mtls] " +
			"[--cert-file F --key-file F] [--ca-file F]")
	}
	return nil
}

// serve starts serving on its own goroutine, and says so once it listens.
func serve() (*grpc.Server, error) {
	stock := service.New("go", service.Stack)
	opts := stock.ServerOptions()
	if *tlsMode != "none" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading --cert-file/--key-file: %w", err)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
		if *tlsMode == "mtls" {
			pem, err := os.ReadFile(*caFile)
			cfg.ClientCAs, cfg.ClientAuth = x509.NewCertPool(), tls.RequireAndVerifyClientCert
			if err != nil || !cfg.ClientCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no CA certificate in --ca-file %q (%v)", *caFile, err)
			}
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	stock.Register(srv)
	hs := health.NewServer()
	for _, name := range []string{"", pb.Stock_ServiceDesc.ServiceName, kvpb.KV_ServiceDesc.ServiceName} {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	lis, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return nil, err
	}
	go func() {
		if err := srv.Serve(lis); err != nil {
			fmt.Fprintln(os.Stderr, "error: serving:", err)
			os.Exit(1)
		}
	}()
	fmt.Printf("listening on %s:%d\n", *host, lis.Addr().(*net.TCPAddr).Port)
	return srv, nil
}
