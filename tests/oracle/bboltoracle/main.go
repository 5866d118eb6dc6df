// Command bboltoracle is oxcd's reference for the bbolt file format: it lets the Rust
// interoperability tests ask go.etcd.io/bbolt 1.3.6 itself whether a file is valid, what it
// contains, and to write a file with given contents. It is test tooling only; nothing ships it.
//
// Usage:
//
//	bboltoracle check DB            exit 0 and print "ok", or exit 1 and print one problem a line
//	bboltoracle dump DB             print the whole database as JSON (schema below), exit 0
//	bboltoracle write DB SPEC.json  create the NEW file DB with bbolt from SPEC.json, exit 0
//
// Any other failure (bad arguments, unreadable file, invalid spec) exits 2 with a message on
// stderr. If bbolt itself panics on a corrupt file the Go runtime exits 2 as well; callers must
// treat every non-zero exit as "not valid".
//
// `check` opens the file read-only (shared flock, 10 s timeout) and reports, in this order:
//   - both meta pages (0 and 1) read straight from the file: magic, version, page size and the
//     FNV-64a checksum must be valid (bbolt only needs one valid meta; a cleanly written file
//     always has two);
//   - every error of bbolt's own tx.Check() (double frees, pages reachable twice, unreachable
//     unfreed pages, out-of-bounds pages, wrong page types);
//   - a full walk of every bucket: the root holds only buckets, keys are strictly ascending in
//     cursor order, and Get/Bucket of every key finds that same entry again (this proves the
//     branch pages route lookups correctly, which tx.Check does not look at).
//
// JSON schema. `dump` prints a Spec; `write` reads one. Keys, values and bucket names are
// lowercase hex strings ("" is the empty byte string). In a dump every list is in bbolt's
// iteration order (bytewise ascending); `write` accepts any order.
//
//	Spec {
//	  "buckets":          [Bucket]  the root's buckets
//	  "page_size":        int       write only, optional: bbolt Options.PageSize (0 = OS page size)
//	  "no_freelist_sync": bool      write only, optional: bbolt Options.NoFreelistSync
//	  "batch_size":       int       write only, optional: operations per write transaction
//	                                (0 = phase 1 in one transaction, phase 2 in another)
//	}
//	Bucket {
//	  "name":           hex
//	  "sequence":       uint64      the bucket's sequence (Bucket.Sequence)
//	  "items":          [Item]      plain key/value pairs
//	  "buckets":        [Bucket]    sub-buckets
//	  "fill_percent":   float       write only, optional: Bucket.FillPercent in every tx (0 = default)
//	  "delete":         [Item]      write only, optional: put in phase 1, deleted in phase 2
//	  "delete_buckets": [Bucket]    write only, optional: created with all their contents in
//	                                phase 1, deleted (with DeleteBucket) in phase 2
//	}
//	Item { "key": hex, "value": hex }
//
// `write` runs two phases, each split into transactions of batch_size operations, so that later
// transactions free pages written by earlier ones and the freelist gets real content:
//   - phase 1, walking buckets depth first: create the bucket and set its sequence (one
//     operation), put each of "items" then each of "delete" (one operation each), then the
//     sub-buckets, then the "delete_buckets" with everything inside them;
//   - phase 2, same walk: delete each key of "delete", DeleteBucket each of "delete_buckets",
//     then the sub-buckets.
//
// So after `write DB S`, `dump DB` equals S with every write-only field removed and lists sorted.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Spec is the whole database; see the package comment for the meaning of each field.
type Spec struct {
	Buckets        []*Bucket `json:"buckets"`
	PageSize       int       `json:"page_size,omitempty"`
	NoFreelistSync bool      `json:"no_freelist_sync,omitempty"`
	BatchSize      int       `json:"batch_size,omitempty"`
}

// Bucket is one bucket and everything below it.
type Bucket struct {
	Name          string    `json:"name"`
	Sequence      uint64    `json:"sequence"`
	Items         []Item    `json:"items"`
	Buckets       []*Bucket `json:"buckets"`
	FillPercent   float64   `json:"fill_percent,omitempty"`
	Delete        []Item    `json:"delete,omitempty"`
	DeleteBuckets []*Bucket `json:"delete_buckets,omitempty"`
}

// Item is one plain key/value pair.
type Item struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

const openTimeout = 10 * time.Second

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var err error
	switch cmd := os.Args[1]; {
	case cmd == "check" && len(os.Args) == 3:
		var problems []string
		problems, err = check(os.Args[2])
		if err == nil {
			if len(problems) == 0 {
				fmt.Println("ok")
				return
			}
			for _, p := range problems {
				fmt.Println(p)
			}
			os.Exit(1)
		}
	case cmd == "dump" && len(os.Args) == 3:
		err = dump(os.Args[2], os.Stdout)
	case cmd == "write" && len(os.Args) == 4:
		err = write(os.Args[2], os.Args[3])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bboltoracle %s: %v\n", os.Args[1], err)
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bboltoracle check DB | dump DB | write DB SPEC.json")
	os.Exit(2)
}

func openReadOnly(path string) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
}

// ---------------------------------------------------------------------------------------------
// check

func check(path string) ([]string, error) {
	problems, err := checkMetaPages(path)
	if err != nil {
		return nil, err
	}
	db, err := openReadOnly(path)
	if err != nil {
		// A file bbolt refuses to open is invalid, not an oracle failure.
		return append(problems, fmt.Sprintf("open: %v", err)), nil
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			problems = append(problems, e.Error())
		}
		problems = append(problems, walkAndVerify(tx)...)
		return nil
	})
	return problems, err
}

// Meta page layout (bbolt 1.3.6, little-endian on every platform we run on): a 16-byte page
// header, then magic u32, version u32, page_size u32, flags u32, root pgid u64, root sequence
// u64, freelist pgid u64, high-water pgid u64, txid u64, checksum u64. The checksum is FNV-64a
// of the 56 bytes from magic up to (not including) the checksum.
const (
	pageHeaderSize    = 16
	metaMagic         = 0xED0CDAED
	metaVersion       = 2
	metaChecksummed   = 56
	metaPageSizeField = pageHeaderSize + 8
)

func checkMetaPages(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 4096)
	if n, err := io.ReadFull(f, head); err != nil {
		return []string{fmt.Sprintf("meta: file too short (%d bytes)", n)}, nil
	}
	pageSize := int64(binary.LittleEndian.Uint32(head[metaPageSizeField:]))
	if pageSize < 1024 || pageSize > 1<<20 || pageSize&(pageSize-1) != 0 {
		return []string{fmt.Sprintf("meta 0: implausible page size %d", pageSize)}, nil
	}
	var problems []string
	for id := int64(0); id < 2; id++ {
		buf := make([]byte, pageHeaderSize+metaChecksummed+8)
		if _, err := f.ReadAt(buf, id*pageSize); err != nil {
			problems = append(problems, fmt.Sprintf("meta %d: unreadable: %v", id, err))
			continue
		}
		problems = append(problems, checkMeta(id, buf, pageSize)...)
	}
	return problems, nil
}

func checkMeta(id int64, buf []byte, pageSize int64) []string {
	var problems []string
	le := binary.LittleEndian
	if pid := le.Uint64(buf[0:]); pid != uint64(id) {
		problems = append(problems, fmt.Sprintf("meta %d: page header id is %d", id, pid))
	}
	if flags := le.Uint16(buf[8:]); flags != 0x04 {
		problems = append(problems, fmt.Sprintf("meta %d: page flags 0x%02x, want 0x04", id, flags))
	}
	m := buf[pageHeaderSize:]
	if v := le.Uint32(m[0:]); v != metaMagic {
		problems = append(problems, fmt.Sprintf("meta %d: bad magic 0x%08x", id, v))
	}
	if v := le.Uint32(m[4:]); v != metaVersion {
		problems = append(problems, fmt.Sprintf("meta %d: bad version %d", id, v))
	}
	if v := int64(le.Uint32(m[8:])); v != pageSize {
		problems = append(problems, fmt.Sprintf("meta %d: page size %d, meta 0 says %d", id, v, pageSize))
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksummed])
	if want, got := h.Sum64(), le.Uint64(m[metaChecksummed:]); want != got {
		problems = append(problems, fmt.Sprintf("meta %d: checksum 0x%016x, want 0x%016x", id, got, want))
	}
	return problems
}

// walkAndVerify reads every entry of every bucket. A panic inside bbolt (corrupt page) becomes
// one more problem instead of a crash.
func walkAndVerify(tx *bolt.Tx) (problems []string) {
	defer func() {
		if r := recover(); r != nil {
			problems = append(problems, fmt.Sprintf("walk: bbolt panicked: %v", r))
		}
	}()
	var prev []byte
	c := tx.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			problems = append(problems, fmt.Sprintf("root: key %x not after %x", k, prev))
		}
		prev = append(prev[:0], k...)
		b := tx.Bucket(k)
		if v != nil || b == nil {
			problems = append(problems, fmt.Sprintf("root: key %x is not a bucket", k))
			continue
		}
		problems = append(problems, verifyBucket(b, fmt.Sprintf("/%x", k))...)
	}
	return problems
}

func verifyBucket(b *bolt.Bucket, where string) []string {
	var problems []string
	var prev []byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			problems = append(problems, fmt.Sprintf("%s: key %x not after %x", where, k, prev))
		}
		prev = append(prev[:0], k...)
		if child := b.Bucket(k); v == nil && child != nil {
			problems = append(problems, verifyBucket(child, fmt.Sprintf("%s/%x", where, k))...)
			continue
		}
		// Get cannot tell a missing key from an empty value; Seek can.
		if sk, sv := b.Cursor().Seek(k); !bytes.Equal(sk, k) || !bytes.Equal(sv, v) {
			problems = append(problems, fmt.Sprintf("%s: Seek(%x) does not find the entry the cursor saw", where, k))
		} else if !bytes.Equal(b.Get(k), v) {
			problems = append(problems, fmt.Sprintf("%s: Get(%x) does not return the value the cursor saw", where, k))
		}
	}
	return problems
}

// ---------------------------------------------------------------------------------------------
// dump

func dump(path string, w io.Writer) error {
	db, err := openReadOnly(path)
	if err != nil {
		return err
	}
	defer db.Close()
	spec := Spec{Buckets: []*Bucket{}}
	err = db.View(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			b := tx.Bucket(k)
			if b == nil {
				return fmt.Errorf("root key %x is not a bucket", k)
			}
			spec.Buckets = append(spec.Buckets, dumpBucket(k, b))
		}
		return nil
	})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(&spec)
}

func dumpBucket(name []byte, b *bolt.Bucket) *Bucket {
	out := &Bucket{
		Name:     hex.EncodeToString(name),
		Sequence: b.Sequence(),
		Items:    []Item{},
		Buckets:  []*Bucket{},
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if child := b.Bucket(k); child != nil {
				out.Buckets = append(out.Buckets, dumpBucket(k, child))
				continue
			}
		}
		out.Items = append(out.Items, Item{Key: hex.EncodeToString(k), Value: hex.EncodeToString(v)})
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// write

func write(path, specPath string) error {
	spec, err := readSpec(specPath)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s already exists; write only creates new files", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        openTimeout,
		PageSize:       spec.PageSize,
		NoFreelistSync: spec.NoFreelistSync,
		// Durability is irrelevant here; the bytes written are the same.
		NoSync: true,
	})
	if err != nil {
		return err
	}
	w := &batchWriter{db: db, batchSize: spec.BatchSize}
	for _, b := range spec.Buckets {
		if err := w.create(nil, b); err != nil {
			return closeWith(db, err)
		}
	}
	if err := w.commit(); err != nil {
		return closeWith(db, err)
	}
	for _, b := range spec.Buckets {
		if err := w.remove([]*Bucket{b}); err != nil {
			return closeWith(db, err)
		}
	}
	if err := w.commit(); err != nil {
		return closeWith(db, err)
	}
	return db.Close()
}

func closeWith(db *bolt.DB, err error) error {
	_ = db.Close()
	return err
}

func readSpec(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &spec, nil
}

// batchWriter runs operations in write transactions of at most batchSize operations each.
type batchWriter struct {
	db        *bolt.DB
	batchSize int
	tx        *bolt.Tx
	ops       int
}

func (w *batchWriter) op(fn func(tx *bolt.Tx) error) error {
	if w.tx == nil {
		tx, err := w.db.Begin(true)
		if err != nil {
			return err
		}
		w.tx, w.ops = tx, 0
	}
	if err := fn(w.tx); err != nil {
		_ = w.tx.Rollback()
		w.tx = nil
		return err
	}
	w.ops++
	if w.batchSize > 0 && w.ops >= w.batchSize {
		return w.commit()
	}
	return nil
}

func (w *batchWriter) commit() error {
	if w.tx == nil {
		return nil
	}
	tx := w.tx
	w.tx = nil
	return tx.Commit()
}

// lookup opens the bucket at path in tx, applying each level's fill percent.
func lookup(tx *bolt.Tx, path []*Bucket) (*bolt.Bucket, error) {
	var b *bolt.Bucket
	for i, s := range path {
		name, err := hex.DecodeString(s.Name)
		if err != nil {
			return nil, fmt.Errorf("bucket name %q: %w", s.Name, err)
		}
		if i == 0 {
			b = tx.Bucket(name)
		} else {
			b = b.Bucket(name)
		}
		if b == nil {
			return nil, fmt.Errorf("bucket %s vanished", pathString(path[:i+1]))
		}
		if s.FillPercent > 0 {
			b.FillPercent = s.FillPercent
		}
	}
	return b, nil
}

func pathString(path []*Bucket) string {
	s := ""
	for _, b := range path {
		s += "/" + b.Name
	}
	return s
}

// create is phase 1 for bucket s under parent (nil parent = root).
func (w *batchWriter) create(parent []*Bucket, s *Bucket) error {
	name, err := hex.DecodeString(s.Name)
	if err != nil {
		return fmt.Errorf("bucket name %q: %w", s.Name, err)
	}
	path := append(append([]*Bucket{}, parent...), s)
	err = w.op(func(tx *bolt.Tx) error {
		var b *bolt.Bucket
		var err error
		if len(parent) == 0 {
			b, err = tx.CreateBucket(name)
		} else {
			var p *bolt.Bucket
			if p, err = lookup(tx, parent); err == nil {
				b, err = p.CreateBucket(name)
			}
		}
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", pathString(path), err)
		}
		return b.SetSequence(s.Sequence)
	})
	if err != nil {
		return err
	}
	for _, items := range [][]Item{s.Items, s.Delete} {
		for _, it := range items {
			if err := w.put(path, it); err != nil {
				return err
			}
		}
	}
	for _, lists := range [][]*Bucket{s.Buckets, s.DeleteBuckets} {
		for _, child := range lists {
			if err := w.create(path, child); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *batchWriter) put(path []*Bucket, it Item) error {
	k, err := hex.DecodeString(it.Key)
	if err != nil {
		return fmt.Errorf("key %q: %w", it.Key, err)
	}
	v, err := hex.DecodeString(it.Value)
	if err != nil {
		return fmt.Errorf("value of key %q: %w", it.Key, err)
	}
	return w.op(func(tx *bolt.Tx) error {
		b, err := lookup(tx, path)
		if err != nil {
			return err
		}
		if err := b.Put(k, v); err != nil {
			return fmt.Errorf("put %s key %s: %w", pathString(path), it.Key, err)
		}
		return nil
	})
}

// remove is phase 2 for the bucket at the end of path.
func (w *batchWriter) remove(path []*Bucket) error {
	s := path[len(path)-1]
	for _, it := range s.Delete {
		k, err := hex.DecodeString(it.Key)
		if err != nil {
			return fmt.Errorf("key %q: %w", it.Key, err)
		}
		err = w.op(func(tx *bolt.Tx) error {
			b, err := lookup(tx, path)
			if err != nil {
				return err
			}
			return b.Delete(k)
		})
		if err != nil {
			return fmt.Errorf("delete %s key %s: %w", pathString(path), it.Key, err)
		}
	}
	for _, child := range s.DeleteBuckets {
		name, err := hex.DecodeString(child.Name)
		if err != nil {
			return fmt.Errorf("bucket name %q: %w", child.Name, err)
		}
		err = w.op(func(tx *bolt.Tx) error {
			b, err := lookup(tx, path)
			if err != nil {
				return err
			}
			return b.DeleteBucket(name)
		})
		if err != nil {
			return fmt.Errorf("delete bucket %s/%s: %w", pathString(path), child.Name, err)
		}
	}
	for _, child := range s.Buckets {
		if err := w.remove(append(append([]*Bucket{}, path...), child)); err != nil {
			return err
		}
	}
	return nil
}
