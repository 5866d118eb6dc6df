// Command erroracle prints the client-visible errors of etcd 3.4.23 as etcd's own Go code defines
// them, for server/tests/etcd_errors.rs to compare with oxcd's table (server/src/api/errors.rs).
// Tab-separated lines, gRPC codes as numbers:
//
//	rpctypes <var name> <code> <message>
//	    every ErrGRPC* status in etcdserver/api/v3rpc/rpctypes/error.go;
//	togrpc <internal error name> <internal error text> <wire code> <wire message>
//	    every entry of v3rpc's toGRPCErrorMap (what togRPCError turns a server-side error
//	    into), with the status grpc-go actually sends for the mapped value.
//
// Completeness is checked here, not assumed: the rpctypes names are read from the source file
// itself (its path is the only argument) and must equal the hand list below; the internal errors must equal the keys of the
// real map, read from the linked v3rpc package. Any drift exits non-zero.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"sort"
	"strings"
	_ "unsafe" // for go:linkname

	"go.etcd.io/etcd/auth"
	"go.etcd.io/etcd/etcdserver"
	"go.etcd.io/etcd/etcdserver/api/membership"
	_ "go.etcd.io/etcd/etcdserver/api/v3rpc" // links toGRPCErrorMap
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	"go.etcd.io/etcd/lease"
	"go.etcd.io/etcd/mvcc"
	"google.golang.org/grpc/status"
)

// toGRPCErrorMap is v3rpc's unexported table (util.go), read as linked into this binary.
//
//go:linkname toGRPCErrorMap go.etcd.io/etcd/etcdserver/api/v3rpc.toGRPCErrorMap
var toGRPCErrorMap map[error]error

const rpctypesPkg = "go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"

// rpctypesErrors names every server-side status of rpctypes (the compiler checks each exists).
var rpctypesErrors = map[string]error{
	"ErrGRPCEmptyKey":                   rpctypes.ErrGRPCEmptyKey,
	"ErrGRPCKeyNotFound":                rpctypes.ErrGRPCKeyNotFound,
	"ErrGRPCValueProvided":              rpctypes.ErrGRPCValueProvided,
	"ErrGRPCLeaseProvided":              rpctypes.ErrGRPCLeaseProvided,
	"ErrGRPCTooManyOps":                 rpctypes.ErrGRPCTooManyOps,
	"ErrGRPCDuplicateKey":               rpctypes.ErrGRPCDuplicateKey,
	"ErrGRPCCompacted":                  rpctypes.ErrGRPCCompacted,
	"ErrGRPCFutureRev":                  rpctypes.ErrGRPCFutureRev,
	"ErrGRPCNoSpace":                    rpctypes.ErrGRPCNoSpace,
	"ErrGRPCLeaseNotFound":              rpctypes.ErrGRPCLeaseNotFound,
	"ErrGRPCLeaseExist":                 rpctypes.ErrGRPCLeaseExist,
	"ErrGRPCLeaseTTLTooLarge":           rpctypes.ErrGRPCLeaseTTLTooLarge,
	"ErrGRPCWatchCanceled":              rpctypes.ErrGRPCWatchCanceled,
	"ErrGRPCMemberExist":                rpctypes.ErrGRPCMemberExist,
	"ErrGRPCPeerURLExist":               rpctypes.ErrGRPCPeerURLExist,
	"ErrGRPCMemberNotEnoughStarted":     rpctypes.ErrGRPCMemberNotEnoughStarted,
	"ErrGRPCMemberBadURLs":              rpctypes.ErrGRPCMemberBadURLs,
	"ErrGRPCMemberNotFound":             rpctypes.ErrGRPCMemberNotFound,
	"ErrGRPCMemberNotLearner":           rpctypes.ErrGRPCMemberNotLearner,
	"ErrGRPCLearnerNotReady":            rpctypes.ErrGRPCLearnerNotReady,
	"ErrGRPCTooManyLearners":            rpctypes.ErrGRPCTooManyLearners,
	"ErrGRPCRequestTooLarge":            rpctypes.ErrGRPCRequestTooLarge,
	"ErrGRPCRequestTooManyRequests":     rpctypes.ErrGRPCRequestTooManyRequests,
	"ErrGRPCRootUserNotExist":           rpctypes.ErrGRPCRootUserNotExist,
	"ErrGRPCRootRoleNotExist":           rpctypes.ErrGRPCRootRoleNotExist,
	"ErrGRPCUserAlreadyExist":           rpctypes.ErrGRPCUserAlreadyExist,
	"ErrGRPCUserEmpty":                  rpctypes.ErrGRPCUserEmpty,
	"ErrGRPCUserNotFound":               rpctypes.ErrGRPCUserNotFound,
	"ErrGRPCRoleAlreadyExist":           rpctypes.ErrGRPCRoleAlreadyExist,
	"ErrGRPCRoleNotFound":               rpctypes.ErrGRPCRoleNotFound,
	"ErrGRPCRoleEmpty":                  rpctypes.ErrGRPCRoleEmpty,
	"ErrGRPCAuthFailed":                 rpctypes.ErrGRPCAuthFailed,
	"ErrGRPCPermissionDenied":           rpctypes.ErrGRPCPermissionDenied,
	"ErrGRPCRoleNotGranted":             rpctypes.ErrGRPCRoleNotGranted,
	"ErrGRPCPermissionNotGranted":       rpctypes.ErrGRPCPermissionNotGranted,
	"ErrGRPCAuthNotEnabled":             rpctypes.ErrGRPCAuthNotEnabled,
	"ErrGRPCInvalidAuthToken":           rpctypes.ErrGRPCInvalidAuthToken,
	"ErrGRPCInvalidAuthMgmt":            rpctypes.ErrGRPCInvalidAuthMgmt,
	"ErrGRPCAuthOldRevision":            rpctypes.ErrGRPCAuthOldRevision,
	"ErrGRPCNoLeader":                   rpctypes.ErrGRPCNoLeader,
	"ErrGRPCNotLeader":                  rpctypes.ErrGRPCNotLeader,
	"ErrGRPCLeaderChanged":              rpctypes.ErrGRPCLeaderChanged,
	"ErrGRPCNotCapable":                 rpctypes.ErrGRPCNotCapable,
	"ErrGRPCStopped":                    rpctypes.ErrGRPCStopped,
	"ErrGRPCTimeout":                    rpctypes.ErrGRPCTimeout,
	"ErrGRPCTimeoutDueToLeaderFail":     rpctypes.ErrGRPCTimeoutDueToLeaderFail,
	"ErrGRPCTimeoutDueToConnectionLost": rpctypes.ErrGRPCTimeoutDueToConnectionLost,
	"ErrGRPCTimeoutWaitAppliedIndex":    rpctypes.ErrGRPCTimeoutWaitAppliedIndex,
	"ErrGRPCUnhealthy":                  rpctypes.ErrGRPCUnhealthy,
	"ErrGRPCCorrupt":                    rpctypes.ErrGRPCCorrupt,
	"ErrGPRCNotSupportedForLearner":     rpctypes.ErrGPRCNotSupportedForLearner,
	"ErrGRPCBadLeaderTransferee":        rpctypes.ErrGRPCBadLeaderTransferee,
}

// internalErrors names the server-side errors togRPCError knows (the keys of toGRPCErrorMap).
var internalErrors = map[string]error{
	"membership.ErrIDRemoved":                  membership.ErrIDRemoved,
	"membership.ErrIDNotFound":                 membership.ErrIDNotFound,
	"membership.ErrIDExists":                   membership.ErrIDExists,
	"membership.ErrPeerURLexists":              membership.ErrPeerURLexists,
	"membership.ErrMemberNotLearner":           membership.ErrMemberNotLearner,
	"membership.ErrTooManyLearners":            membership.ErrTooManyLearners,
	"etcdserver.ErrNotEnoughStartedMembers":    etcdserver.ErrNotEnoughStartedMembers,
	"etcdserver.ErrLearnerNotReady":            etcdserver.ErrLearnerNotReady,
	"mvcc.ErrCompacted":                        mvcc.ErrCompacted,
	"mvcc.ErrFutureRev":                        mvcc.ErrFutureRev,
	"etcdserver.ErrRequestTooLarge":            etcdserver.ErrRequestTooLarge,
	"etcdserver.ErrNoSpace":                    etcdserver.ErrNoSpace,
	"etcdserver.ErrTooManyRequests":            etcdserver.ErrTooManyRequests,
	"etcdserver.ErrNoLeader":                   etcdserver.ErrNoLeader,
	"etcdserver.ErrNotLeader":                  etcdserver.ErrNotLeader,
	"etcdserver.ErrLeaderChanged":              etcdserver.ErrLeaderChanged,
	"etcdserver.ErrStopped":                    etcdserver.ErrStopped,
	"etcdserver.ErrTimeout":                    etcdserver.ErrTimeout,
	"etcdserver.ErrTimeoutDueToLeaderFail":     etcdserver.ErrTimeoutDueToLeaderFail,
	"etcdserver.ErrTimeoutDueToConnectionLost": etcdserver.ErrTimeoutDueToConnectionLost,
	"etcdserver.ErrTimeoutWaitAppliedIndex":    etcdserver.ErrTimeoutWaitAppliedIndex,
	"etcdserver.ErrUnhealthy":                  etcdserver.ErrUnhealthy,
	"etcdserver.ErrKeyNotFound":                etcdserver.ErrKeyNotFound,
	"etcdserver.ErrCorrupt":                    etcdserver.ErrCorrupt,
	"etcdserver.ErrBadLeaderTransferee":        etcdserver.ErrBadLeaderTransferee,
	"lease.ErrLeaseNotFound":                   lease.ErrLeaseNotFound,
	"lease.ErrLeaseExists":                     lease.ErrLeaseExists,
	"lease.ErrLeaseTTLTooLarge":                lease.ErrLeaseTTLTooLarge,
	"auth.ErrRootUserNotExist":                 auth.ErrRootUserNotExist,
	"auth.ErrRootRoleNotExist":                 auth.ErrRootRoleNotExist,
	"auth.ErrUserAlreadyExist":                 auth.ErrUserAlreadyExist,
	"auth.ErrUserEmpty":                        auth.ErrUserEmpty,
	"auth.ErrUserNotFound":                     auth.ErrUserNotFound,
	"auth.ErrRoleAlreadyExist":                 auth.ErrRoleAlreadyExist,
	"auth.ErrRoleNotFound":                     auth.ErrRoleNotFound,
	"auth.ErrRoleEmpty":                        auth.ErrRoleEmpty,
	"auth.ErrAuthFailed":                       auth.ErrAuthFailed,
	"auth.ErrPermissionDenied":                 auth.ErrPermissionDenied,
	"auth.ErrRoleNotGranted":                   auth.ErrRoleNotGranted,
	"auth.ErrPermissionNotGranted":             auth.ErrPermissionNotGranted,
	"auth.ErrAuthNotEnabled":                   auth.ErrAuthNotEnabled,
	"auth.ErrInvalidAuthToken":                 auth.ErrInvalidAuthToken,
	"auth.ErrInvalidAuthMgmt":                  auth.ErrInvalidAuthMgmt,
	"auth.ErrAuthOldRevision":                  auth.ErrAuthOldRevision,
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "erroracle: "+format+"\n", args...)
	os.Exit(1)
}

// declaredStatusNames parses the given rpctypes/error.go (the file this binary was built from)
// and returns every ErrGRPC*/ErrGPRC* variable it declares.
func declaredStatusNames(path string) []string {
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		fail("cannot parse %s: %v", path, err)
	}
	var names []string
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.VAR {
			continue
		}
		for _, spec := range gen.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				// The typo "GPRC" is etcd 3.4's own (ErrGPRCNotSupportedForLearner).
				if strings.HasPrefix(name.Name, "ErrGRPC") || strings.HasPrefix(name.Name, "ErrGPRC") {
					names = append(names, name.Name)
				}
			}
		}
	}
	sort.Strings(names)
	return names
}

func sortedKeys(m map[string]error) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func printRPCTypes(errorGoPath string) {
	declared := declaredStatusNames(errorGoPath)
	listed := sortedKeys(rpctypesErrors)
	if strings.Join(declared, " ") != strings.Join(listed, " ") {
		fail("rpctypes declares %v\nbut this program lists %v", declared, listed)
	}
	for _, name := range listed {
		s, ok := status.FromError(rpctypesErrors[name])
		if !ok {
			fail("rpctypes.%s is not a gRPC status", name)
		}
		fmt.Printf("rpctypes\t%s\t%d\t%s\n", name, int(s.Code()), s.Message())
	}
}

func printToGRPC() {
	if len(toGRPCErrorMap) != len(internalErrors) {
		fail("toGRPCErrorMap has %d entries, this program lists %d", len(toGRPCErrorMap), len(internalErrors))
	}
	for _, name := range sortedKeys(internalErrors) {
		internal := internalErrors[name]
		mapped, ok := toGRPCErrorMap[internal]
		if !ok {
			fail("%s is not a key of toGRPCErrorMap", name)
		}
		// What grpc-go's server sends for a handler's error: its status, or Unknown with the
		// error's text when it carries none (status.Convert does exactly that).
		wire := status.Convert(mapped)
		fmt.Printf("togrpc\t%s\t%s\t%d\t%s\n", name, internal.Error(), int(wire.Code()), wire.Message())
	}
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: erroracle GOPATH/src/%s/error.go", rpctypesPkg)
	}
	printRPCTypes(os.Args[1])
	printToGRPC()
}
