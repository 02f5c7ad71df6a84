package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	ucli "github.com/urfave/cli/v2"
)

func txnCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "txn",
		Usage: "list, describe and abort transactions; find hanging ones (like kafka-transactions.sh)",
		Subcommands: []*ucli.Command{
			{Name: "list", Usage: "transactional ids, their producer and state", Flags: []ucli.Flag{brokersFlag,
				&ucli.StringSliceFlag{Name: "state", Usage: "only in this state (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort); repeatable"},
			}, Action: txnList},
			{Name: "describe", Usage: "a transaction's producer, state, timeout, age and partitions", ArgsUsage: "TRANSACTIONAL-ID...", Flags: []ucli.Flag{brokersFlag}, Action: txnDescribe},
			{Name: "describe-producers", Usage: "a partition's active producers and their open transactions", Flags: []ucli.Flag{brokersFlag,
				&ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "topic (required)"},
				&ucli.IntSliceFlag{Name: "partition", Aliases: []string{"p"}, Usage: "partition; repeatable (default: all)"},
			}, Action: txnDescribeProducers},
			{Name: "find-hanging", Usage: "open transactions on a topic's partitions that the coordinator does not list as ongoing there, or older than --max-age", Flags: []ucli.Flag{brokersFlag,
				&ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Usage: "topic (required)"},
				&ucli.DurationFlag{Name: "max-age", Value: 15 * time.Minute, Usage: "an ongoing transaction older than this counts as hanging (transaction.max.timeout.ms)"},
			}, Action: txnFindHanging},
			{Name: "abort", Usage: "abort a transactional id's ongoing transaction, fencing its producer (as a new producer with the id would)", ArgsUsage: "TRANSACTIONAL-ID", Flags: []ucli.Flag{brokersFlag}, Action: txnAbort},
		},
	}
}

func txnList(c *ucli.Context) error {
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	listed, err := adm.ListTransactions(c.Context, nil, c.StringSlice("state"))
	if err != nil {
		return fmt.Errorf("txn list: %w", err)
	}
	ids := listed.TransactionalIDs()
	described, err := adm.DescribeTransactions(c.Context, ids...)
	if err != nil && len(ids) > 0 {
		return fmt.Errorf("txn list: %w", err)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRANSACTIONAL ID\tPRODUCER ID\tSTATE\tRUNNING FOR")
	for _, id := range ids {
		l := listed[id]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", id, l.ProducerID, l.State, runningFor(described[id]))
	}
	return tw.Flush()
}

// runningFor is how long an open transaction has run, "-" for others.
func runningFor(d kadm.DescribedTransaction) string {
	if d.Err != nil || d.StartTimestamp < 0 || d.State == "" {
		return "-"
	}
	return time.Since(time.UnixMilli(d.StartTimestamp)).Round(time.Millisecond).String()
}

func txnDescribe(c *ucli.Context) error {
	if c.NArg() == 0 {
		return errors.New("txn describe: name at least one transactional id")
	}
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	described, err := adm.DescribeTransactions(c.Context, c.Args().Slice()...)
	if err != nil {
		return fmt.Errorf("txn describe: %w", err)
	}
	w := c.App.Writer
	for _, id := range c.Args().Slice() {
		d, ok := described[id]
		switch {
		case !ok || errors.Is(d.Err, kerr.TransactionalIDNotFound):
			return fmt.Errorf("txn describe %s: no such transactional id", id)
		case d.Err != nil:
			return fmt.Errorf("txn describe %s: %w", id, d.Err)
		}
		fmt.Fprintf(w, "Transactional id: %s\tProducer id: %d\tEpoch: %d\tState: %s\tTimeout: %s\tRunning for: %s\n",
			id, d.ProducerID, d.ProducerEpoch, d.State, time.Duration(d.TimeoutMillis)*time.Millisecond, runningFor(d))
		for _, t := range d.Topics.Sorted() {
			fmt.Fprintf(w, "  %s partitions %v\n", t.Topic, t.Partitions)
		}
	}
	return nil
}

// topicPartitions is the set of --topic's partitions: those named by
// --partition, or all of them.
func topicPartitions(c *ucli.Context, adm *kadm.Client) (kadm.TopicsSet, error) {
	topic := c.String("topic")
	if topic == "" {
		return nil, errors.New("name a --topic")
	}
	set := kadm.TopicsSet{topic: {}}
	if ps := c.IntSlice("partition"); len(ps) > 0 {
		for _, p := range ps {
			set[topic][int32(p)] = struct{}{}
		}
		return set, nil
	}
	md, err := adm.Metadata(c.Context, topic)
	if err != nil {
		return nil, err
	}
	t, ok := md.Topics[topic]
	switch {
	case !ok:
		return nil, fmt.Errorf("topic %s: no such topic", topic)
	case t.Err != nil:
		return nil, fmt.Errorf("topic %s: %w", topic, t.Err)
	}
	for p := range t.Partitions {
		set[topic][p] = struct{}{}
	}
	return set, nil
}

// topicProducers describes the active producers of --topic's partitions
// (--partition's, or all).
func topicProducers(c *ucli.Context, adm *kadm.Client) (kadm.DescribedProducersTopics, error) {
	set, err := topicPartitions(c, adm)
	if err != nil {
		return nil, err
	}
	return adm.DescribeProducers(c.Context, set)
}

func txnDescribeProducers(c *ucli.Context) error {
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	described, err := topicProducers(c, adm)
	if err != nil {
		return fmt.Errorf("txn describe-producers: %w", err)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tPRODUCER ID\tEPOCH\tLAST SEQUENCE\tCOORDINATOR EPOCH\tTRANSACTION START OFFSET")
	for _, p := range described.SortedPartitions() {
		if p.Err != nil {
			return fmt.Errorf("txn describe-producers %s/%d: %w", p.Topic, p.Partition, p.Err)
		}
		for _, d := range p.ActiveProducers.Sorted() {
			start := "-"
			if d.CurrentTxnStartOffset >= 0 {
				start = fmt.Sprint(d.CurrentTxnStartOffset)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Topic, p.Partition, d.ProducerID, d.ProducerEpoch, d.LastSequence, d.CoordinatorEpoch, start)
		}
	}
	return tw.Flush()
}

// txnFindHanging reports open transactions on a topic's partitions that
// no ongoing transaction of the coordinator holds there (their markers
// will never come), or that have run longer than --max-age.
func txnFindHanging(c *ucli.Context) error {
	adm, done, err := newAdmin(c)
	if err != nil {
		return err
	}
	defer done()
	producers, err := topicProducers(c, adm)
	if err != nil {
		return fmt.Errorf("txn find-hanging: %w", err)
	}
	listed, err := adm.ListTransactions(c.Context, nil, nil)
	if err != nil {
		return fmt.Errorf("txn find-hanging: %w", err)
	}
	ids := listed.TransactionalIDs()
	described, err := adm.DescribeTransactions(c.Context, ids...)
	if err != nil && len(ids) > 0 {
		return fmt.Errorf("txn find-hanging: %w", err)
	}
	// Who holds each partition, by producer id.
	holds := func(pid int64, topic string, p int32) (kadm.DescribedTransaction, bool) {
		for _, d := range described {
			if d.ProducerID != pid || !slices.Contains([]string{"Ongoing", "PrepareCommit", "PrepareAbort"}, d.State) {
				continue
			}
			if _, ok := d.Topics[topic][p]; ok {
				return d, true
			}
		}
		return kadm.DescribedTransaction{}, false
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tPRODUCER ID\tEPOCH\tSTART OFFSET\tTRANSACTIONAL ID\tWHY")
	found := 0
	for _, p := range producers.SortedPartitions() {
		if p.Err != nil {
			return fmt.Errorf("txn find-hanging %s/%d: %w", p.Topic, p.Partition, p.Err)
		}
		for _, d := range p.ActiveProducers.Sorted() {
			if d.CurrentTxnStartOffset < 0 {
				continue
			}
			txn, ok := holds(d.ProducerID, p.Topic, p.Partition)
			why := ""
			switch {
			case !ok:
				why = "no ongoing transaction of the coordinator holds the partition"
			case txn.StartTimestamp >= 0 && time.Since(time.UnixMilli(txn.StartTimestamp)) > c.Duration("max-age"):
				why = "running for " + runningFor(txn)
			default:
				continue
			}
			found++
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Topic, p.Partition, d.ProducerID, d.ProducerEpoch, d.CurrentTxnStartOffset,
				map[bool]string{true: txn.TxnID, false: "-"}[ok], why)
		}
	}
	if found == 0 {
		fmt.Fprintf(c.App.Writer, "no hanging transactions on %s\n", c.String("topic"))
		return nil
	}
	return tw.Flush()
}

// txnAbort aborts a transactional id's ongoing transaction the way a new
// producer taking the id over does: InitProducerId bumps the epoch,
// fencing the old producer, and the coordinator aborts what it had open.
func txnAbort(c *ucli.Context) error {
	if c.NArg() != 1 {
		return errors.New("txn abort: name one transactional id")
	}
	id := c.Args().First()
	cl, err := newKafkaClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	before, err := kadm.NewClient(cl).DescribeTransactions(c.Context, id)
	if err != nil {
		return fmt.Errorf("txn abort %s: %w", id, err)
	}
	if d := before[id]; d.Err != nil {
		return fmt.Errorf("txn abort %s: %w", id, d.Err)
	} else if !slices.Contains([]string{"Ongoing", "PrepareAbort"}, d.State) {
		return fmt.Errorf("txn abort %s: nothing to abort: the transaction is %s", id, d.State)
	}
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = &id, 60000, -1, -1
	for {
		resp, err := req.RequestWith(c.Context, cl)
		if err != nil {
			return fmt.Errorf("txn abort %s: %w", id, err)
		}
		switch code := resp.ErrorCode; {
		case code == 0:
			fmt.Fprintf(c.App.Writer, "aborted %s's transaction; its producer is fenced (now producer id %d, epoch %d)\n", id, resp.ProducerID, resp.ProducerEpoch)
			return nil
		case code == kerr.ConcurrentTransactions.Code || code == kerr.CoordinatorLoadInProgress.Code || code == kerr.NotCoordinator.Code:
			select { // the abort is being completed: ask again
			case <-c.Context.Done():
				return fmt.Errorf("txn abort %s: %w", id, c.Context.Err())
			case <-time.After(100 * time.Millisecond):
			}
		default:
			return fmt.Errorf("txn abort %s: %s", id, strings.TrimSpace(kerr.ErrorForCode(code).Error()))
		}
	}
}
