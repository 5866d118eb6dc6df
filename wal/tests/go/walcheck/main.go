// walcheck drives etcd 3.4's own wal package against a WAL directory, for oxcd-wal's
// interoperability test (wal/tests/etcd_interop.rs). Commands:
//
//	walcheck read DIR INDEX TERM                 print metadata, hard state and entries
//	walcheck append DIR INDEX TERM COUNT SEGSIZE  append COUNT entries, cutting at SEGSIZE
//	walcheck create DIR COUNT SEGSIZE             create a WAL holding COUNT entries
//	walcheck snap-load DIR                        load the newest snap file
//	walcheck snap-save DIR TERM INDEX DATAHEX     save a snap file (voters 1, 2, 3)
//
// Output lines: "metadata HEX", "state TERM VOTE COMMIT", "entry INDEX TERM TYPE HEX",
// "snap TERM INDEX VOTERS DATAHEX" (voters comma-separated).
package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.etcd.io/etcd/etcdserver/api/snap"
	"go.etcd.io/etcd/raft/raftpb"
	"go.etcd.io/etcd/wal"
	"go.etcd.io/etcd/wal/walpb"
	"go.uber.org/zap"
)

func num(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		fail("bad number %q", s)
	}
	return n
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func open(dir, index, term string) (*wal.WAL, []byte, raftpb.HardState, []raftpb.Entry) {
	w, err := wal.Open(zap.NewNop(), dir, walpb.Snapshot{Index: num(index), Term: num(term)})
	if err != nil {
		fail("open: %v", err)
	}
	md, st, ents, err := w.ReadAll()
	if err != nil {
		fail("readall: %v", err)
	}
	return w, md, st, ents
}

func appendEntries(w *wal.WAL, first, term, count uint64) {
	for i := first; i < first+count; i++ {
		e := raftpb.Entry{Term: term, Index: i, Data: []byte(fmt.Sprintf("etcd %d", i))}
		st := raftpb.HardState{Term: term, Vote: 1, Commit: i}
		if err := w.Save(st, []raftpb.Entry{e}); err != nil {
			fail("save: %v", err)
		}
	}
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: walcheck read|append|create DIR ...")
	}
	dir := os.Args[2]
	switch os.Args[1] {
	case "read":
		w, md, st, ents := open(dir, os.Args[3], os.Args[4])
		fmt.Printf("metadata %s\n", hex.EncodeToString(md))
		fmt.Printf("state %d %d %d\n", st.Term, st.Vote, st.Commit)
		for _, e := range ents {
			fmt.Printf("entry %d %d %d %s\n", e.Index, e.Term, int32(e.Type), hex.EncodeToString(e.Data))
		}
		w.Close()
	case "append":
		w, _, st, ents := open(dir, os.Args[3], os.Args[4])
		wal.SegmentSizeBytes = int64(num(os.Args[6]))
		next := num(os.Args[3]) + 1
		if len(ents) > 0 {
			next = ents[len(ents)-1].Index + 1
		}
		appendEntries(w, next, st.Term+1, num(os.Args[5]))
		w.Close()
	case "create":
		wal.SegmentSizeBytes = int64(num(os.Args[4]))
		w, err := wal.Create(zap.NewNop(), dir, []byte("etcd metadata"))
		if err != nil {
			fail("create: %v", err)
		}
		appendEntries(w, 1, 2, num(os.Args[3]))
		w.Close()
	case "snap-load":
		s, err := snap.New(zap.NewNop(), dir).Load()
		if err != nil {
			fail("snap load: %v", err)
		}
		voters := make([]string, 0, len(s.Metadata.ConfState.Voters))
		for _, v := range s.Metadata.ConfState.Voters {
			voters = append(voters, strconv.FormatUint(v, 10))
		}
		fmt.Printf("snap %d %d %s %s\n", s.Metadata.Term, s.Metadata.Index,
			strings.Join(voters, ","), hex.EncodeToString(s.Data))
	case "snap-save":
		data, err := hex.DecodeString(os.Args[5])
		if err != nil {
			fail("bad hex: %v", err)
		}
		s := raftpb.Snapshot{Data: data, Metadata: raftpb.SnapshotMetadata{
			ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}},
			Term:      num(os.Args[3]),
			Index:     num(os.Args[4]),
		}}
		if err := snap.New(zap.NewNop(), dir).SaveSnap(s); err != nil {
			fail("snap save: %v", err)
		}
	default:
		fail("unknown command %q", os.Args[1])
	}
}
