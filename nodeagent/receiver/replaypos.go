package receiver

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/jailsync/jailsync/nodeagent/peer"
)

// bucketReplayed holds, per member, the journal whose rename log this
// receiver last replayed and the last sequence number it decided on:
// key the member's node name, value the sequence number (8 bytes, big
// endian) then the journal's identity. It lives in the index's database,
// committed with the index records of what a replay applied.
var bucketReplayed = []byte("replayed")

// replayPos is a replay request's place in its member's rename log: done
// is where the receiver was before it (0 for another journal), last the
// last sequence number of the request it decided on.
type replayPos struct {
	member, journal string
	done, last      uint64
}

// replayedUpTo returns the last sequence number replayed from member's
// journal, 0 when none was or the member's journal was another.
func replayedUpTo(tx *bolt.Tx, member, journal string) uint64 {
	b := tx.Bucket(bucketReplayed)
	if b == nil {
		return 0
	}
	v := b.Get([]byte(member))
	if len(v) < 8 || string(v[8:]) != journal {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// ReplayPositions returns, for each member whose rename log this member
// replayed, the journal and the last sequence number it replayed from it
// (bucketReplayed): what a sender announces with a run
// (peer.PathsRequest.Replayed). Empty, not nil, when it replayed none: a
// receiver maps a run only when positions were sent.
func ReplayPositions(db *bolt.DB) []peer.ReplayPos {
	out := []peer.ReplayPos{}
	_ = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReplayed)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) >= 8 {
				out = append(out, peer.ReplayPos{Member: string(k), Journal: string(v[8:]), Seq: binary.BigEndian.Uint64(v)})
			}
			return nil
		})
	})
	return out
}

// setReplayed records seq as the last sequence number replayed from
// member's journal.
func setReplayed(tx *bolt.Tx, member, journal string, seq uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketReplayed)
	if err != nil {
		return fmt.Errorf("replay positions: %w", err)
	}
	v := binary.BigEndian.AppendUint64(nil, seq)
	if err := b.Put([]byte(member), append(v, journal...)); err != nil {
		return fmt.Errorf("record replay position of %s: %w", member, err)
	}
	return nil
}
