// Command plugin serves the stock-matrix service of ../go/service (stock.v1.Stock with the test hooks, and the
// legacy proto.KV) as a HashiCorp go-plugin plugin: plugin.Serve writes the handshake line, listens (a Unix
// socket outside Windows), makes its own certificate for automatic mTLS (PLUGIN_CLIENT_CERT), and registers
// its health ("plugin"), reflection, broker, controller and stdio services next to ours.
package main

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"stockmatrix/service"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// handshake is what a host and this plugin agree on; the host sets STOCK_MATRIX_PLUGIN=stock-matrix.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "STOCK_MATRIX_PLUGIN",
	MagicCookieValue: "stock-matrix",
}

// stockPlugin is the plugin "stock": a gRPC-only plugin whose server side registers the service.
type stockPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	svc *service.Service
}

func (p *stockPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	p.svc.Register(s)
	return nil
}

// GRPCClient is the host side, which this plugin does not use: it hands over the connection as it is.
func (p *stockPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return c, nil
}

func main() {
	svc := service.New("go-plugin", stack())
	servers := make(chan *grpc.Server, 1)
	go stopOnSignalOrEOF(servers)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		Plugins:         plugin.PluginSet{"stock": &stockPlugin{svc: svc}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			srv := grpc.NewServer(append(opts, svc.ServerOptions()...)...)
			servers <- srv
			return srv
		},
	})
	// plugin.Serve returns once the gRPC server has stopped (and exits 1 itself on a setup error).
}

// stopOnSignalOrEOF stops the server on SIGTERM, SIGINT or stdin's end-of-file, as the contract asks of every
// server. plugin.Serve by itself ignores SIGINT (server.go: "Eat the interrupts", since a host's terminal
// sends it to the whole process group) and leaves SIGTERM to Go's default, which kills the process at once.
// Once the server has stopped, plugin.Serve returns and main ends with code 0.
func stopOnSignalOrEOF(servers <-chan *grpc.Server) {
	service.WaitForStop()
	select {
	case srv := <-servers:
		service.Stop(srv)
		time.Sleep(time.Second) // plugin.Serve returns and main ends first; this is a backstop
	default: // not serving yet
	}
	os.Exit(0)
}

// stack is Inventory.stack: the plugin library and the gRPC stack, with the versions this binary was built with.
func stack() string {
	pluginVersion := "?"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/hashicorp/go-plugin" {
				pluginVersion = dep.Version
			}
		}
	}
	return "hashicorp/go-plugin " + pluginVersion + " over " + service.Stack
}
