// Command wireoracle prints, one per line as "name hex", the protobuf encoding that etcd
// 3.4.23's own Go types (gogoproto-generated) produce for a fixed set of messages. The test
// server/tests/wire_compat.rs builds the same messages with oxcd's generated types and
// demands identical bytes. Each case name here must have a twin of the same name there.
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/auth/authpb"
	v3electionpb "go.etcd.io/etcd/etcdserver/api/v3election/v3electionpb"
	v3lockpb "go.etcd.io/etcd/etcdserver/api/v3lock/v3lockpb"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"go.etcd.io/etcd/mvcc/mvccpb"
)

type marshaler interface {
	Marshal() ([]byte, error)
}

func kv() *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            []byte("foo"),
		CreateRevision: 2,
		ModRevision:    9,
		Version:        4,
		Value:          []byte("bar"),
		// Lease IDs are int64; a negative one takes the ten-byte varint form.
		Lease: -7,
	}
}

func putPrevKv() *pb.PutRequest {
	return &pb.PutRequest{Key: []byte("foo"), Value: []byte("bar"), Lease: 0x694d77a1b2c3d4e5, PrevKv: true}
}

func rangeSorted() *pb.RangeRequest {
	return &pb.RangeRequest{
		Key:               []byte("a"),
		RangeEnd:          []byte("b"),
		Limit:             10,
		Revision:          5,
		SortOrder:         pb.RangeRequest_DESCEND,
		SortTarget:        pb.RangeRequest_MOD,
		Serializable:      true,
		KeysOnly:          true,
		MinModRevision:    1,
		MaxModRevision:    100,
		MinCreateRevision: 2,
		MaxCreateRevision: 200,
	}
}

func txnNested() *pb.TxnRequest {
	inner := &pb.TxnRequest{
		Compare: []*pb.Compare{{
			Result: pb.Compare_EQUAL, Target: pb.Compare_LEASE, Key: []byte("l"),
			TargetUnion: &pb.Compare_Lease{Lease: 0},
		}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("l")}}}},
	}
	return &pb.TxnRequest{
		Compare: []*pb.Compare{
			{Result: pb.Compare_NOT_EQUAL, Target: pb.Compare_VALUE, Key: []byte("k"),
				TargetUnion: &pb.Compare_Value{Value: []byte("v")}},
			{Result: pb.Compare_GREATER, Target: pb.Compare_MOD, Key: []byte("k2"),
				TargetUnion: &pb.Compare_ModRevision{ModRevision: 7}, RangeEnd: []byte("k3")},
			// A zero inside a oneof is still written: "version == 0" means "key absent".
			{Result: pb.Compare_EQUAL, Target: pb.Compare_VERSION, Key: []byte("new"),
				TargetUnion: &pb.Compare_Version{Version: 0}},
			{Result: pb.Compare_LESS, Target: pb.Compare_CREATE, Key: []byte("c"),
				TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 3}},
		},
		Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: putPrevKv()}},
			{Request: &pb.RequestOp_RequestTxn{RequestTxn: inner}},
		},
		Failure: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{
				Key: []byte("d"), RangeEnd: []byte{0}, PrevKv: true}}},
			// An empty message inside a oneof is still written, as a zero-length field.
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{}}},
		},
	}
}

func main() {
	cases := []struct {
		name string
		msg  marshaler
	}{
		{"put_prev_kv", putPrevKv()},
		{"put_ignore", &pb.PutRequest{Key: []byte("k"), IgnoreValue: true, IgnoreLease: true}},
		{"range_sorted", rangeSorted()},
		{"range_all_count_only", &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true}},
		{"txn_nested", txnNested()},
		{"internal_raft_put", &pb.InternalRaftRequest{
			Header: &pb.RequestHeader{ID: 0x1c2d3e4f5a6b7c8d, Username: "root", AuthRevision: 3},
			Put:    putPrevKv(),
		}},
		{"internal_raft_txn", &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1}, Txn: txnNested()}},
		{"internal_raft_compaction", &pb.InternalRaftRequest{
			Header: &pb.RequestHeader{ID: 2}, Compaction: &pb.CompactionRequest{Revision: 100, Physical: true}}},
		{"internal_raft_lease_checkpoint", &pb.InternalRaftRequest{
			Header: &pb.RequestHeader{ID: 3},
			LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{
				{ID: 5, Remaining_TTL: 30}, {ID: 6, Remaining_TTL: 1}}},
		}},
		{"internal_raft_auth_role_grant", &pb.InternalRaftRequest{
			Header: &pb.RequestHeader{ID: 4, Username: "root"},
			AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r",
				Perm: &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("a"), RangeEnd: []byte("b")}},
		}},
		{"internal_raft_authenticate", &pb.InternalRaftRequest{
			Header:       &pb.RequestHeader{ID: 5},
			Authenticate: &pb.InternalAuthenticateRequest{Name: "u", Password: "p", SimpleToken: "tok.7"},
		}},
		{"key_value", kv()},
		{"event_delete", &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("foo"), ModRevision: 10}, PrevKv: kv()}},
		{"watch_create", &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte("w"), RangeEnd: []byte("x"), StartRevision: 4, ProgressNotify: true,
			Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT, pb.WatchCreateRequest_NODELETE},
			PrevKv:  true, WatchId: 3, Fragment: true,
		}}}},
		{"watch_progress", &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}},
		{"watch_response", &pb.WatchResponse{
			Header:  &pb.ResponseHeader{ClusterId: 0xcdf818194e3a8c32, MemberId: 0x8e9e05c52164694d, Revision: 12, RaftTerm: 2},
			WatchId: 3, Canceled: true, CompactRevision: 5, CancelReason: "compacted", Fragment: true,
			Events: []*mvccpb.Event{{Type: mvccpb.PUT, Kv: kv()}},
		}},
		{"range_response", &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 9}, Kvs: []*mvccpb.KeyValue{kv(), kv()}, More: true, Count: 2}},
		{"status_response", &pb.StatusResponse{
			Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 3, RaftTerm: 4},
			Version: "3.5.0", DbSize: 24576, Leader: 2, RaftIndex: 7, RaftTerm: 4, RaftAppliedIndex: 7,
			Errors: []string{"memberID:2 alarm:NOSPACE "}, DbSizeInUse: 16384, IsLearner: true,
		}},
		{"alarm_request", &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 2, Alarm: pb.AlarmType_NOSPACE}},
		{"hash_kv_response", &pb.HashKVResponse{Header: &pb.ResponseHeader{Revision: 5}, Hash: 0xdeadbeef, CompactRevision: 2}},
		{"snapshot_response", &pb.SnapshotResponse{RemainingBytes: 1 << 20, Blob: []byte{0, 1, 2, 0xff}}},
		{"lease_time_to_live_response", &pb.LeaseTimeToLiveResponse{ID: 9, TTL: -1, GrantedTTL: 60, Keys: [][]byte{[]byte("a"), []byte("b")}}},
		{"member_add_response", &pb.MemberAddResponse{
			Member: &pb.Member{ID: 0x8e9e05c52164694d, Name: "default", PeerURLs: []string{"http://localhost:2380"}, IsLearner: true},
			Members: []*pb.Member{{ID: 1, ClientURLs: []string{"http://127.0.0.1:2379", "http://10.0.0.1:2379"}}},
		}},
		{"auth_user_add", &pb.AuthUserAddRequest{Name: "u", Password: "p", Options: &authpb.UserAddOptions{NoPassword: true}}},
		{"authpb_user", &authpb.User{Name: []byte("u"), Password: []byte("$2a$10$x"), Roles: []string{"r1", "r2"}, Options: &authpb.UserAddOptions{}}},
		{"authpb_role", &authpb.Role{Name: []byte("r"), KeyPermission: []*authpb.Permission{{PermType: authpb.WRITE, Key: []byte("k")}, {Key: []byte("a"), RangeEnd: []byte{0}}}}},
		{"lock_response", &v3lockpb.LockResponse{Header: &pb.ResponseHeader{Revision: 3}, Key: []byte("lk/694d")}},
		{"election_proclaim", &v3electionpb.ProclaimRequest{
			Leader: &v3electionpb.LeaderKey{Name: []byte("e"), Key: []byte("e/1"), Rev: 4, Lease: 0x694d}, Value: []byte("v")}},
	}
	for _, c := range cases {
		b, err := c.msg.Marshal()
		if err != nil {
			fmt.Fprintf(os.Stderr, "wireoracle: %s: %v\n", c.name, err)
			os.Exit(1)
		}
		fmt.Printf("%s %x\n", c.name, b)
	}
}
