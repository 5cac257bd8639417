// Command pushsms is the partner's command line for the pushsms API: send a
// message, follow its state and compliance's decision, preview a text,
// upload a campaign from a CSV file, pause, resume or cancel a campaign or a
// whole short code, stream delivery reports, import and
// query suppression lists; and, for operators, create a partner.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Usage: pushsms <command> [flags]

Commands:
  send              send one SMS and print its message id
  status <id>       print a message's state, compliance decision and segments
  preview           tell how a text is encoded and into how many segments
  campaign submit   upload a campaign from a CSV file
  campaign get <id> print a campaign's state, counts and refusals by reason
  campaign cancel <id>
  campaign pause <id>
  campaign resume <id>
                    hold a campaign's unsent messages, or release them again
  shortcode get <sc>
                    print a short code's state, contracted and achieved rate
  shortcode pause|resume <sc>
                    hold every release of a short code, or release again
  shortcode cancel <sc>
                    cancel the short code's messages accepted until now and
                    not yet sent
  shortcode rate <sc> <n>
                    set a short code's contracted SMS/s for every replica
                    (aggregator; talks to NATS)
  events            stream delivery reports and inbound messages
  suppress import [-brand B] [-note N] FILE
                    suppress the numbers of FILE (one a line) for a brand,
                    or for all your messages
  suppress status [-brand B] [-short-code S] MSISDN
                    tell whether a number is blocked, and why
  partner create    create a partner and print its API key (operators)
  ported import [-incremental] FILE.csv
                    load a portability file into compliance's ported-numbers
                    table (aggregator)
  ported status     print the ported-numbers table's version, size and source
  invoice -month YYYY-MM [-format table|csv|json]
                    print the operator's invoice of a month (aggregator)
  statement -tenant T -month YYYY-MM
                    print a partner's statement of a month
  plan put|list     a partner's price plan versions
  reconcile -month YYYY-MM FILE.csv
                    import the operator's statement and print the
                    differences with the ledger (-show: print it again)
  forecast put -period YYYY-H1 FILE.csv | forecast report -period YYYY-H1
                    the twice-yearly forecasts, and actuals against them
  tariff put FILE.json | tariff list [-default]
  catalog add|qualified|list
                    short-code and qualification history (the fees' basis)
  credit topup|show -tenant T
                    a prepaid partner's credit, in segments

The API address and key come from -addr and -key, or PUSHSMS_ADDR and
PUSHSMS_API_KEY. Run "pushsms <command> -h" for a command's flags.
The ported commands talk to compliance's internal port (-addr or
PUSHSMS_COMPLIANCE_ADDR, default localhost:9091), which has no API key:
run them from inside the cluster. The invoice, statement, plan, reconcile,
forecast, tariff, catalog and credit commands talk to billing's internal
port (-addr or PUSHSMS_BILLING_ADDR, default localhost:9094), no API key
either.
`

// cli runs one command, printing its result to out and messages to err.
type cli struct {
	out, err io.Writer
	// getenv reads the environment (PUSHSMS_ADDR, PUSHSMS_API_KEY, …).
	getenv func(string) string
}

// commands maps a command (and subcommand) to its function, which gets the
// remaining arguments.
func (c *cli) commands() map[string]func(ctx context.Context, args []string) error {
	return map[string]func(ctx context.Context, args []string) error{
		"send":              c.runSend,
		"status":            c.runStatus,
		"preview":           c.runPreview,
		"campaign submit":   c.runCampaignSubmit,
		"campaign get":      c.runCampaignGet,
		"campaign cancel":   c.runCampaignCancel,
		"campaign pause":    c.runCampaignPause,
		"campaign resume":   c.runCampaignResume,
		"shortcode get":     c.runShortCodeGet,
		"shortcode pause":   c.runShortCodePause,
		"shortcode resume":  c.runShortCodeResume,
		"shortcode cancel":  c.runShortCodeCancel,
		"shortcode rate":    c.runShortCodeRate,
		"events":            c.runEvents,
		"suppress import":   c.runSuppressImport,
		"suppress status":   c.runSuppressStatus,
		"partner create":    c.runPartnerCreate,
		"ported import":     c.runPortedImport,
		"ported status":     c.runPortedStatus,
		"invoice":           c.runInvoice,
		"statement":         c.runStatement,
		"plan put":          c.runPlanPut,
		"plan list":         c.runPlanList,
		"reconcile":         c.runReconcile,
		"forecast put":      c.runForecastPut,
		"forecast report":   c.runForecastReport,
		"tariff put":        c.runTariffPut,
		"tariff list":       c.runTariffList,
		"catalog add":       c.runCatalogAdd,
		"catalog qualified": c.runCatalogQualified,
		"catalog list":      c.runCatalogList,
		"credit topup":      c.runCreditTopUp,
		"credit show":       c.runCreditShow,
	}
}

// flags is a command's flag set, printing to c.err.
func (c *cli) flags(name string, handling flag.ErrorHandling) *flag.FlagSet {
	fs := flag.NewFlagSet(name, handling)
	fs.SetOutput(c.err)
	return fs
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &cli{out: os.Stdout, err: os.Stderr, getenv: os.Getenv}
	err := c.run(ctx, os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushsms:", err)
		os.Exit(1)
	}
}

func (c *cli) run(ctx context.Context, args []string) error {
	commands := c.commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "help" {
		fmt.Fprint(c.err, usage)
		if len(args) == 0 {
			return errors.New("no command")
		}
		return nil
	}
	if cmd, ok := commands[args[0]]; ok {
		return cmd(ctx, args[1:])
	}
	if len(args) > 1 {
		if cmd, ok := commands[args[0]+" "+args[1]]; ok {
			return cmd(ctx, args[2:])
		}
	}
	fmt.Fprint(c.err, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
