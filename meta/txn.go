package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// The transaction coordinator's state, kept in the metadata so a new
// controller carries every transaction on: each transactional id's
// producer id and epoch, its state, the partitions and groups it wrote
// to, and its timeout. Commands move a transaction through Kafka's
// states:
//
//	Empty ─add─▶ Ongoing ─end─▶ PrepareCommit/PrepareAbort ─complete─▶ CompleteCommit/CompleteAbort ─add─▶ Ongoing ...
//
// InitTxn (InitProducerId with a transactional id) bumps the epoch,
// fencing the producer that had it; on an Ongoing transaction it aborts
// it first (PrepareAbort with the new epoch) and asks the client to try
// again (ErrConcurrentTransactions). Markers are written between Prepare
// and Complete; CompleteTxn records that they are.

// TxnState is a transaction's state, as Kafka names them.
type TxnState int8

const (
	TxnEmpty TxnState = iota
	TxnOngoing
	TxnPrepareCommit
	TxnPrepareAbort
	TxnCompleteCommit
	TxnCompleteAbort
)

func (s TxnState) String() string {
	switch s {
	case TxnEmpty:
		return "Empty"
	case TxnOngoing:
		return "Ongoing"
	case TxnPrepareCommit:
		return "PrepareCommit"
	case TxnPrepareAbort:
		return "PrepareAbort"
	case TxnCompleteCommit:
		return "CompleteCommit"
	case TxnCompleteAbort:
		return "CompleteAbort"
	}
	return fmt.Sprintf("TxnState(%d)", int8(s))
}

// Errors of the transaction commands, as Kafka's.
var (
	// ErrProducerFenced: an epoch older than the transactional id's
	// (PRODUCER_FENCED).
	ErrProducerFenced = errors.New("meta: producer fenced")
	// ErrInvalidProducerIDMapping: a producer id the transactional id
	// does not have (INVALID_PRODUCER_ID_MAPPING).
	ErrInvalidProducerIDMapping = errors.New("meta: invalid producer id mapping")
	// ErrConcurrentTransactions: the transaction is being committed or
	// aborted; retry (CONCURRENT_TRANSACTIONS).
	ErrConcurrentTransactions = errors.New("meta: concurrent transactions")
	// ErrInvalidTxnState: a request the transaction's state does not
	// allow (INVALID_TXN_STATE).
	ErrInvalidTxnState = errors.New("meta: invalid transaction state")
	// ErrUnknownTransactionalID: no transaction of that id
	// (TRANSACTIONAL_ID_NOT_FOUND).
	ErrUnknownTransactionalID = errors.New("meta: unknown transactional id")
)

// TxnPartition is a partition a transaction wrote to.
type TxnPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// Transaction is one transactional id's coordinator state.
type Transaction struct {
	ID         string         `json:"id"`
	ProducerID int64          `json:"producer_id"`
	Epoch      int16          `json:"epoch"`
	State      TxnState       `json:"state"`
	TimeoutMs  int32          `json:"timeout_ms"`
	Partitions []TxnPartition `json:"partitions,omitempty"`
	Groups     []string       `json:"groups,omitempty"`
	// StartMs is when the transaction in progress began (its first
	// AddPartitions or AddOffsets); UpdateMs the last change.
	StartMs  int64 `json:"start_ms"`
	UpdateMs int64 `json:"update_ms"`
	// Offsets are the transaction's pending offset commits
	// (TxnOffsetCommit): written to their groups if it commits, dropped
	// if it aborts.
	Offsets []Offset `json:"offsets,omitempty"`
	// PrevProducerID and PrevEpoch are what the producer ended its last
	// transaction with under transactions v2 (or what a coordinator
	// abort fenced): an EndTxn retried with them is answered as the
	// first was. -1 when none.
	PrevProducerID int64 `json:"prev_producer_id"`
	PrevEpoch      int16 `json:"prev_epoch"`
	// NextProducerID, when not -1, is the producer id the transactional
	// id moves to (at epoch 0) once the markers of the transaction
	// being completed are written: its epoch was exhausted, so they
	// carry the old producer id at the last epoch.
	NextProducerID int64 `json:"next_producer_id"`
}

// ClientProducer is the producer id and epoch the client is to use next:
// the next producer id at epoch 0 while an exhausted one completes.
func (t Transaction) ClientProducer() (int64, int16) {
	if t.NextProducerID >= 0 {
		return t.NextProducerID, 0
	}
	return t.ProducerID, t.Epoch
}

// InitTxn is InitProducerId with a transactional id: a new id gets a
// producer id and epoch 0, a known one the next epoch (a new producer id
// once the epoch is exhausted). ProducerID and Epoch, when not -1, are
// what the client had (KIP-360): a retry after a timeout is answered
// with the same epoch, an older one is fenced. The result's Txn holds
// the producer id and epoch handed out.
type InitTxn struct {
	ID         string
	TimeoutMs  int32
	ProducerID int64
	Epoch      int16
	NowMs      int64
}

// AddTxnPartitions adds partitions (and groups, for AddOffsetsToTxn) to
// the producer's transaction, starting one if none is in progress.
type AddTxnPartitions struct {
	ID         string
	ProducerID int64
	Epoch      int16
	Partitions []TxnPartition
	Groups     []string
	NowMs      int64
}

// EndTxn asks to commit or abort the transaction in progress (EndTxn):
// it moves to PrepareCommit or PrepareAbort, and the markers are to be
// written. A retry of an end already decided succeeds.
//
// V2 is transactions v2 (EndTxn v5, KIP-890 part 2): the epoch is bumped
// by every end, so the markers carry the new one and fence any late
// write of the old; a retry comes with the old epoch (PrevEpoch); an
// abort with nothing in progress bumps the epoch too.
type EndTxn struct {
	ID         string
	ProducerID int64
	Epoch      int16
	Commit     bool
	NowMs      int64
	V2         bool
}

// TxnCommitOffsets adds offsets for a group the transaction holds (by
// AddOffsetsToTxn) to its pending commits; a later one for the same
// partition replaces an earlier one. AddGroup (TxnOffsetCommit v5 under
// transactions v2) adds the group itself, starting the transaction if
// none is in progress.
type TxnCommitOffsets struct {
	ID         string
	ProducerID int64
	Epoch      int16
	Group      string
	Offsets    []Offset
	NowMs      int64
	AddGroup   bool
}

// ExpireTxn is the coordinator aborting a transaction past its timeout:
// the epoch is bumped, fencing the producer that let it run over, and
// the transaction moves to PrepareAbort for its markers (written with
// the new epoch). Only the Ongoing transaction of ProducerID at Epoch
// expires.
type ExpireTxn struct {
	ID         string
	ProducerID int64
	Epoch      int16
	NowMs      int64
}

// ForgetTxn removes a transactional id left idle past
// transactional.id.expiration.ms: only at rest (Empty or Complete*) and
// unchanged since UpdateMs, so a producer that came back meanwhile keeps
// it. Its producer id is not reused.
type ForgetTxn struct {
	ID       string
	UpdateMs int64
}

// CompleteTxn records that a prepared transaction's markers are written:
// it moves to CompleteCommit or CompleteAbort and forgets its partitions;
// a commit writes its pending offsets to their groups.
// Fenced by producer id and epoch, so a late completion of an earlier
// transaction changes nothing.
type CompleteTxn struct {
	ID         string
	ProducerID int64
	Epoch      int16
	NowMs      int64
}

const (
	TypeInitTxn          CommandType = 20
	TypeAddTxnPartitions CommandType = 21
	TypeEndTxn           CommandType = 22
	TypeCompleteTxn      CommandType = 23
	TypeTxnCommitOffsets CommandType = 24
	TypeExpireTxn        CommandType = 25
	TypeForgetTxn        CommandType = 26
)

const keyTxn = "x/txn/" // x/txn/<transactional id>

func txnKey(id string) []byte { return append([]byte(keyTxn), id...) }

func (InitTxn) Type() CommandType          { return TypeInitTxn }
func (AddTxnPartitions) Type() CommandType { return TypeAddTxnPartitions }
func (EndTxn) Type() CommandType           { return TypeEndTxn }
func (CompleteTxn) Type() CommandType      { return TypeCompleteTxn }
func (TxnCommitOffsets) Type() CommandType { return TypeTxnCommitOffsets }
func (ExpireTxn) Type() CommandType        { return TypeExpireTxn }
func (ForgetTxn) Type() CommandType        { return TypeForgetTxn }

func (c *ForgetTxn) encode(e *encoder) {
	e.string(c.ID)
	e.varint(c.UpdateMs)
}
func (c *ForgetTxn) decode(d *decoder) { c.ID, c.UpdateMs = d.string(), d.varint() }

func (c *TxnCommitOffsets) encode(e *encoder) {
	e.string(c.ID)
	e.varint(c.ProducerID)
	e.varint(int64(c.Epoch))
	e.string(c.Group)
	encodeOffsets(e, c.Offsets)
	e.varint(c.NowMs)
	e.bool(c.AddGroup)
}
func (c *TxnCommitOffsets) decode(d *decoder) {
	c.ID, c.ProducerID, c.Epoch, c.Group = d.string(), d.varint(), int16(d.varint()), d.string()
	c.Offsets = decodeOffsets(d)
	c.NowMs = d.varint()
	if len(d.b) > 0 { // absent from commands written before transactions v2
		c.AddGroup = d.bool()
	}
}

func (c *ExpireTxn) encode(e *encoder) {
	e.string(c.ID)
	e.varint(c.ProducerID)
	e.varint(int64(c.Epoch))
	e.varint(c.NowMs)
}
func (c *ExpireTxn) decode(d *decoder) {
	c.ID, c.ProducerID, c.Epoch, c.NowMs = d.string(), d.varint(), int16(d.varint()), d.varint()
}

func (c *InitTxn) encode(e *encoder) {
	e.string(c.ID)
	e.varint(int64(c.TimeoutMs))
	e.varint(c.ProducerID)
	e.varint(int64(c.Epoch))
	e.varint(c.NowMs)
}
func (c *InitTxn) decode(d *decoder) {
	c.ID, c.TimeoutMs, c.ProducerID, c.Epoch, c.NowMs = d.string(), d.int32(), d.varint(), int16(d.varint()), d.varint()
}

func encodeTxnPartitions(e *encoder, ps []TxnPartition) {
	e.uvarint(uint64(len(ps)))
	for _, p := range ps {
		e.string(p.Topic)
		e.varint(int64(p.Partition))
	}
}

func decodeTxnPartitions(d *decoder) []TxnPartition {
	n := d.length()
	if n == 0 {
		return nil
	}
	ps := make([]TxnPartition, n)
	for i := range ps {
		ps[i] = TxnPartition{Topic: d.string(), Partition: d.int32()}
	}
	return ps
}

func (c *AddTxnPartitions) encode(e *encoder) {
	e.string(c.ID)
	e.varint(c.ProducerID)
	e.varint(int64(c.Epoch))
	encodeTxnPartitions(e, c.Partitions)
	e.strings(c.Groups)
	e.varint(c.NowMs)
}
func (c *AddTxnPartitions) decode(d *decoder) {
	c.ID, c.ProducerID, c.Epoch = d.string(), d.varint(), int16(d.varint())
	c.Partitions = decodeTxnPartitions(d)
	c.Groups = d.strings()
	c.NowMs = d.varint()
}

func (c *EndTxn) encode(e *encoder) {
	e.string(c.ID)
	e.varint(c.ProducerID)
	e.varint(int64(c.Epoch))
	e.bool(c.Commit)
	e.varint(c.NowMs)
	e.bool(c.V2)
}
func (c *EndTxn) decode(d *decoder) {
	c.ID, c.ProducerID, c.Epoch, c.Commit, c.NowMs = d.string(), d.varint(), int16(d.varint()), d.bool(), d.varint()
	if len(d.b) > 0 { // absent from commands written before transactions v2
		c.V2 = d.bool()
	}
}

func (c *CompleteTxn) encode(e *encoder) {
	e.string(c.ID)
	e.varint(c.ProducerID)
	e.varint(int64(c.Epoch))
	e.varint(c.NowMs)
}
func (c *CompleteTxn) decode(d *decoder) {
	c.ID, c.ProducerID, c.Epoch, c.NowMs = d.string(), d.varint(), int16(d.varint()), d.varint()
}

func (t *Transaction) encode() []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.string(t.ID)
	e.varint(t.ProducerID)
	e.varint(int64(t.Epoch))
	e.varint(int64(t.State))
	e.varint(int64(t.TimeoutMs))
	encodeTxnPartitions(&e, t.Partitions)
	e.strings(t.Groups)
	e.varint(t.StartMs)
	e.varint(t.UpdateMs)
	encodeOffsets(&e, t.Offsets)
	e.varint(t.PrevProducerID)
	e.varint(int64(t.PrevEpoch))
	e.varint(t.NextProducerID)
	return e.b
}

func decodeTransaction(b []byte) (Transaction, error) {
	d := decoder{b: b}
	var t Transaction
	if v := d.byte(); v != stateVersion {
		return t, fmt.Errorf("%w: transaction record version %d", ErrUnknownCommand, v)
	}
	t.ID, t.ProducerID, t.Epoch = d.string(), d.varint(), int16(d.varint())
	t.State, t.TimeoutMs = TxnState(d.varint()), d.int32()
	t.Partitions = decodeTxnPartitions(&d)
	t.Groups = d.strings()
	t.StartMs, t.UpdateMs = d.varint(), d.varint()
	if len(d.b) > 0 { // absent from records written before TxnOffsetCommit
		t.Offsets = decodeOffsets(&d)
	}
	t.PrevProducerID, t.PrevEpoch, t.NextProducerID = -1, -1, -1
	if len(d.b) > 0 { // absent from records written before transactions v2
		t.PrevProducerID, t.PrevEpoch, t.NextProducerID = d.varint(), int16(d.varint()), d.varint()
	}
	return t, d.finish("transaction")
}

// readTxn reads a transaction in the batch being applied.
func (w *writer) readTxn(id string) (Transaction, bool, error) {
	return getRecord(w.txn, txnKey(id), decodeTransaction)
}

func (w *writer) writeTxn(t *Transaction) error { return w.set(txnKey(t.ID), t.encode()) }

// takeProducerID hands out one producer id from the counter
// AllocateProducerIDs uses, so transactional and idempotent producers
// never share one.
func (w *writer) takeProducerID() (int64, error) {
	next := int64(1000)
	item, err := w.txn.Get([]byte(keyProducers))
	if err == nil {
		err = item.Value(func(v []byte) error {
			if len(v) == 8 {
				next = int64(binary.BigEndian.Uint64(v))
			}
			return nil
		})
	}
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return 0, err
	}
	return next, w.set([]byte(keyProducers), binary.BigEndian.AppendUint64(nil, uint64(next+1)))
}

// txnResult is an applied transaction command's answer: the state after.
func txnResult(t Transaction) *ApplyResult { return &ApplyResult{Txn: &t} }

func validTxnID(id string) error {
	if id == "" || strings.ContainsRune(id, 0) {
		return fmt.Errorf("%w: transactional id %q", ErrInvalidRequest, id)
	}
	return nil
}

func (w *writer) initTxn(c *InitTxn) (*ApplyResult, error) {
	if err := validTxnID(c.ID); err != nil {
		return rejected(err)
	}
	if c.TimeoutMs <= 0 {
		return rejected(fmt.Errorf("%w: transaction timeout %d ms", ErrInvalidRequest, c.TimeoutMs))
	}
	t, ok, err := w.readTxn(c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		pid, err := w.takeProducerID()
		if err != nil {
			return nil, err
		}
		t = Transaction{ID: c.ID, ProducerID: pid, Epoch: 0, State: TxnEmpty, TimeoutMs: c.TimeoutMs, UpdateMs: c.NowMs,
			PrevProducerID: -1, PrevEpoch: -1, NextProducerID: -1}
		return txnResult(t), w.writeTxn(&t)
	}
	if c.ProducerID >= 0 {
		// KIP-360: the client names what it had. The current epoch is
		// the one to bump; the previous one is a retry of the last
		// init, answered as it was.
		switch {
		case c.ProducerID == t.ProducerID && c.Epoch == t.Epoch:
		case c.ProducerID == t.ProducerID && c.Epoch == t.Epoch-1 && (t.State == TxnEmpty || t.State == TxnCompleteAbort || t.State == TxnCompleteCommit):
			return txnResult(t), nil
		case c.ProducerID != t.ProducerID:
			return rejected(fmt.Errorf("%w: %s has producer id %d, not %d", ErrProducerFenced, c.ID, t.ProducerID, c.ProducerID))
		default:
			return rejected(fmt.Errorf("%w: %s is at epoch %d, not %d", ErrProducerFenced, c.ID, t.Epoch, c.Epoch))
		}
	}
	switch t.State {
	case TxnPrepareCommit, TxnPrepareAbort:
		return rejected(fmt.Errorf("%w: %s is %s", ErrConcurrentTransactions, c.ID, t.State))
	case TxnOngoing:
		// Fence the producer that had it and abort its transaction; the
		// client tries again once the abort completes.
		if err := w.bumpForMarkers(&t); err != nil {
			return nil, err
		}
		t.State, t.UpdateMs, t.PrevProducerID, t.PrevEpoch = TxnPrepareAbort, c.NowMs, -1, -1
		if err := w.writeTxn(&t); err != nil {
			return nil, err
		}
		return &ApplyResult{Err: fmt.Errorf("%w: %s was ongoing: aborting it", ErrConcurrentTransactions, c.ID), Txn: &t}, nil
	}
	if err := w.bumpEpoch(&t); err != nil {
		return nil, err
	}
	t.State, t.TimeoutMs, t.UpdateMs = TxnEmpty, c.TimeoutMs, c.NowMs
	t.Partitions, t.Groups, t.PrevProducerID, t.PrevEpoch = nil, nil, -1, -1
	return txnResult(t), w.writeTxn(&t)
}

// bumpEpoch moves t to its next epoch, or to a new producer id at epoch
// 0 once the epoch is exhausted (an epoch of MaxInt16 cannot be bumped).
func (w *writer) bumpEpoch(t *Transaction) error {
	if t.Epoch < math.MaxInt16-1 {
		t.Epoch++
		return nil
	}
	pid, err := w.takeProducerID()
	if err != nil {
		return err
	}
	t.ProducerID, t.Epoch = pid, 0
	return nil
}

// bumpForMarkers moves t to the epoch its markers will carry, fencing
// any write of the epoch before. An exhausted epoch goes to its last
// value, with the producer id to move to once the markers are written
// (NextProducerID): the markers must name the producer id that wrote.
func (w *writer) bumpForMarkers(t *Transaction) error {
	if t.Epoch >= math.MaxInt16 {
		return rejection{fmt.Errorf("%w: %s is at the last epoch of producer %d with markers pending", ErrInvalidTxnState, t.ID, t.ProducerID)}
	}
	t.Epoch++
	if t.Epoch == math.MaxInt16 {
		pid, err := w.takeProducerID()
		if err != nil {
			return err
		}
		t.NextProducerID = pid
	}
	return nil
}

// checkProducer fences a command of a producer id or epoch the
// transaction does not have.
func checkProducer(t Transaction, pid int64, epoch int16) error {
	switch {
	case t.NextProducerID >= 0 && pid == t.NextProducerID && epoch == 0:
		// The producer id an exhausted epoch moves to, told to the
		// client before the markers are all written.
		return fmt.Errorf("%w: %s is %s", ErrConcurrentTransactions, t.ID, t.State)
	case pid != t.ProducerID:
		return fmt.Errorf("%w: %s has producer id %d, not %d", ErrInvalidProducerIDMapping, t.ID, t.ProducerID, pid)
	case epoch < t.Epoch:
		return fmt.Errorf("%w: %s is at epoch %d, not %d", ErrProducerFenced, t.ID, t.Epoch, epoch)
	case epoch > t.Epoch:
		return fmt.Errorf("%w: %s is at epoch %d, not %d", ErrInvalidTxnState, t.ID, t.Epoch, epoch)
	}
	return nil
}

// producerTxn reads the transaction a producer's command names,
// rejecting (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED) a producer it
// does not have.
func (w *writer) producerTxn(id string, pid int64, epoch int16) (Transaction, error) {
	t, ok, err := w.readTxn(id)
	switch {
	case err != nil:
		return t, err
	case !ok:
		return t, rejection{fmt.Errorf("%w: %s", ErrInvalidProducerIDMapping, id)}
	}
	if err := checkProducer(t, pid, epoch); err != nil {
		return t, rejection{err}
	}
	return t, nil
}

func (w *writer) addTxnPartitions(c *AddTxnPartitions) (*ApplyResult, error) {
	t, err := w.producerTxn(c.ID, c.ProducerID, c.Epoch)
	if err != nil {
		return nil, err
	}
	for _, p := range c.Partitions {
		if _, err := w.partitionOrReject(p.Topic, p.Partition); err != nil {
			return nil, err
		}
	}
	switch t.State {
	case TxnPrepareCommit, TxnPrepareAbort:
		return rejected(fmt.Errorf("%w: %s is %s", ErrConcurrentTransactions, c.ID, t.State))
	case TxnEmpty, TxnCompleteCommit, TxnCompleteAbort:
		t.State, t.StartMs, t.Partitions, t.Groups = TxnOngoing, c.NowMs, nil, nil
	}
	for _, p := range c.Partitions {
		if !slices.Contains(t.Partitions, p) {
			t.Partitions = append(t.Partitions, p)
		}
	}
	for _, g := range c.Groups {
		if g == "" {
			return rejected(fmt.Errorf("%w: empty group id", ErrInvalidRequest))
		}
		if !slices.Contains(t.Groups, g) {
			t.Groups = append(t.Groups, g)
		}
	}
	t.UpdateMs = c.NowMs
	return txnResult(t), w.writeTxn(&t)
}

func (w *writer) endTxn(c *EndTxn) (*ApplyResult, error) {
	want, done := TxnPrepareAbort, TxnCompleteAbort
	if c.Commit {
		want, done = TxnPrepareCommit, TxnCompleteCommit
	}
	if c.V2 {
		return w.endTxnV2(c, want, done)
	}
	t, err := w.producerTxn(c.ID, c.ProducerID, c.Epoch)
	if err != nil {
		return nil, err
	}
	switch t.State {
	case TxnOngoing:
		t.State, t.UpdateMs = want, c.NowMs
		return txnResult(t), w.writeTxn(&t)
	case want, done:
		return txnResult(t), nil // a retry of the same end
	case TxnEmpty:
		if !c.Commit {
			return txnResult(t), nil // nothing to abort
		}
	}
	return rejected(fmt.Errorf("%w: %s is %s; cannot %s", ErrInvalidTxnState, c.ID, t.State, map[bool]string{true: "commit", false: "abort"}[c.Commit]))
}

// endTxnV2 is EndTxn under transactions v2: the end bumps the epoch (the
// markers carry the new one), an abort with nothing in progress bumps it
// too, and a retry names the epoch the transaction was ended with.
func (w *writer) endTxnV2(c *EndTxn, want, done TxnState) (*ApplyResult, error) {
	t, ok, err := w.readTxn(c.ID)
	if err != nil {
		return nil, err
	}
	if ok && t.PrevProducerID >= 0 && c.ProducerID == t.PrevProducerID && c.Epoch == t.PrevEpoch && (t.State == want || t.State == done) {
		return txnResult(t), nil // a retry of the same end
	}
	if t, err = w.producerTxn(c.ID, c.ProducerID, c.Epoch); err != nil {
		return nil, err
	}
	switch t.State {
	case TxnOngoing:
		if err := w.bumpForMarkers(&t); err != nil {
			return nil, err
		}
		t.State = want
	case TxnEmpty, TxnCompleteCommit, TxnCompleteAbort:
		if c.Commit {
			return rejected(fmt.Errorf("%w: %s is %s; nothing to commit", ErrInvalidTxnState, c.ID, t.State))
		}
		// Nothing in progress: the abort only bumps the epoch (clients
		// abort when unsure whether a produce reached the partition).
		if err := w.bumpEpoch(&t); err != nil {
			return nil, err
		}
		t.State = TxnCompleteAbort
	default:
		return rejected(fmt.Errorf("%w: %s is %s", ErrConcurrentTransactions, c.ID, t.State))
	}
	t.PrevProducerID, t.PrevEpoch, t.UpdateMs = c.ProducerID, c.Epoch, c.NowMs
	return txnResult(t), w.writeTxn(&t)
}

func (w *writer) completeTxn(c *CompleteTxn) (*ApplyResult, error) {
	t, ok, err := w.readTxn(c.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return rejected(fmt.Errorf("%w: %s", ErrUnknownTransactionalID, c.ID))
	}
	if t.ProducerID != c.ProducerID || t.Epoch != c.Epoch {
		return rejected(fmt.Errorf("%w: %s is at producer %d epoch %d, not %d/%d", ErrProducerFenced, c.ID, t.ProducerID, t.Epoch, c.ProducerID, c.Epoch))
	}
	switch t.State {
	case TxnPrepareCommit:
		t.State = TxnCompleteCommit
		for i := range t.Offsets {
			o := &t.Offsets[i]
			o.CommitTimeMs = c.NowMs
			if err := w.putOffset(*o); err != nil {
				return nil, err
			}
		}
	case TxnPrepareAbort:
		t.State = TxnCompleteAbort
	default:
		return txnResult(t), nil // completed already
	}
	t.Partitions, t.Groups, t.Offsets, t.UpdateMs = nil, nil, nil, c.NowMs
	if t.NextProducerID >= 0 { // the exhausted epoch's markers are written
		t.ProducerID, t.Epoch, t.NextProducerID = t.NextProducerID, 0, -1
	}
	return txnResult(t), w.writeTxn(&t)
}

func (w *writer) txnCommitOffsets(c *TxnCommitOffsets) (*ApplyResult, error) {
	t, err := w.producerTxn(c.ID, c.ProducerID, c.Epoch)
	if err != nil {
		return nil, err
	}
	switch {
	case t.State == TxnPrepareCommit || t.State == TxnPrepareAbort:
		return rejected(fmt.Errorf("%w: %s is %s", ErrConcurrentTransactions, c.ID, t.State))
	case c.AddGroup && c.Group == "":
		return rejected(fmt.Errorf("%w: empty group id", ErrInvalidRequest))
	case c.AddGroup:
		if t.State != TxnOngoing {
			t.State, t.StartMs, t.Partitions, t.Groups = TxnOngoing, c.NowMs, nil, nil
		}
		if !slices.Contains(t.Groups, c.Group) {
			t.Groups = append(t.Groups, c.Group)
		}
	case t.State != TxnOngoing || !slices.Contains(t.Groups, c.Group):
		return rejected(fmt.Errorf("%w: %s (%s) has not added group %q", ErrInvalidTxnState, c.ID, t.State, c.Group))
	}
	for _, o := range c.Offsets {
		o.Group = c.Group
		i := slices.IndexFunc(t.Offsets, func(p Offset) bool { return p.Group == o.Group && p.Topic == o.Topic && p.Partition == o.Partition })
		if i >= 0 {
			t.Offsets[i] = o
		} else {
			t.Offsets = append(t.Offsets, o)
		}
	}
	t.UpdateMs = c.NowMs
	return txnResult(t), w.writeTxn(&t)
}

func (w *writer) forgetTxn(c *ForgetTxn) (*ApplyResult, error) {
	t, ok, err := w.readTxn(c.ID)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return rejected(fmt.Errorf("%w: %s", ErrUnknownTransactionalID, c.ID))
	case t.UpdateMs != c.UpdateMs || (t.State != TxnEmpty && t.State != TxnCompleteCommit && t.State != TxnCompleteAbort):
		return rejected(fmt.Errorf("%w: %s is %s, changed at %d, not %d", ErrInvalidTxnState, c.ID, t.State, t.UpdateMs, c.UpdateMs))
	}
	return &ApplyResult{}, w.delete(txnKey(c.ID))
}

func (w *writer) expireTxn(c *ExpireTxn) (*ApplyResult, error) {
	t, ok, err := w.readTxn(c.ID)
	if err != nil {
		return nil, err
	}
	if !ok || t.ProducerID != c.ProducerID || t.Epoch != c.Epoch || t.State != TxnOngoing {
		return rejected(fmt.Errorf("%w: %s is no longer the ongoing transaction of producer %d epoch %d", ErrInvalidTxnState, c.ID, c.ProducerID, c.Epoch))
	}
	if err := w.bumpForMarkers(&t); err != nil {
		return nil, err
	}
	// The producer that let it time out may still abort it (under
	// transactions v2 its EndTxn is answered as a retry) but nothing
	// else: its epoch is fenced.
	t.State, t.UpdateMs, t.PrevProducerID, t.PrevEpoch = TxnPrepareAbort, c.NowMs, c.ProducerID, c.Epoch
	return txnResult(t), w.writeTxn(&t)
}

// Transactions lists every transactional id's state.
func (v *View) Transactions() ([]Transaction, error) {
	return listRecords(v.txn, []byte(keyTxn), decodeTransaction)
}

// Transaction reads one transactional id's state.
func (v *View) Transaction(id string) (Transaction, bool, error) {
	return getRecord(v.txn, txnKey(id), decodeTransaction)
}
