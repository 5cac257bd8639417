package numplan

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

//go:generate go run ./cmd/majnum-gen -in ../../../shared/data/arcep-majnum/majournums.raw.csv -out data/majnum-0607.txt

//go:embed data/majnum-0607.txt
var majnum []byte

// Orange is the ARCEP operator code ("identifiant CE") of Orange France,
// which holds Orange's metropolitan and overseas mobile blocks.
const Orange = "FRTE"

// Block is one allocation of the ARCEP MAJNUM file.
type Block struct {
	// Root is the allocated prefix in national form ("0607", "064951").
	Root string
	// Length is the number of national digits of the numbers in the block:
	// 10, 14 for metropolitan M2M, 13 for overseas M2M.
	Length int
	// Holder is the operator the block was allocated to, the ARCEP
	// "identifiant CE" (Orange is FRTE). Ported numbers keep the block of
	// their original operator, so this is not the current operator.
	Holder string
	// Territory is FR (Métropole), GP (Guadeloupe, St-Martin,
	// St-Barthélemy), MQ, GF, RE, YT, OI ("La Réunion - Océan indien") or PM.
	Territory string
}

// Plan is the ARCEP block list for the 06 and 07 ranges. Build it once with
// Load and share it: it is read-only and safe for concurrent use.
type Plan struct {
	blocks []Block // sorted by Length, then Root; no overlaps
}

// Load returns the Plan built from the MAJNUM extract embedded in the
// package (see data/README.md for its date and licence).
func Load() (*Plan, error) {
	return Read(bytes.NewReader(majnum))
}

// Read builds a Plan from the compact format written by majnum-gen, for a
// fresher extract than the embedded one.
func Read(r io.Reader) (*Plan, error) {
	var p Plan
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		b, err := parseBlock(text)
		if err != nil {
			return nil, fmt.Errorf("numplan: read plan line %d: %w", line, err)
		}
		p.blocks = append(p.blocks, b)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("numplan: read plan: %w", err)
	}
	slices.SortFunc(p.blocks, compareBlocks)
	for i := 1; i < len(p.blocks); i++ {
		prev, cur := p.blocks[i-1], p.blocks[i]
		if prev.Length == cur.Length && strings.HasPrefix(cur.Root, prev.Root) {
			return nil, fmt.Errorf("numplan: read plan: block %s overlaps %s", cur.Root, prev.Root)
		}
	}
	if len(p.blocks) == 0 {
		return nil, fmt.Errorf("numplan: read plan: no blocks")
	}
	return &p, nil
}

func parseBlock(text string) (Block, error) {
	f := strings.Split(text, ";")
	if len(f) != 4 {
		return Block{}, fmt.Errorf("got %d fields, want 4", len(f))
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return Block{}, fmt.Errorf("length: %w", err)
	}
	b := Block{Root: f[0], Length: n, Holder: f[2], Territory: f[3]}
	if b.Root == "" || len(b.Root) > b.Length || strings.Trim(b.Root, "0123456789") != "" {
		return Block{}, fmt.Errorf("bad root %q for length %d", b.Root, b.Length)
	}
	if b.Holder == "" || b.Territory == "" {
		return Block{}, fmt.Errorf("block %s: empty holder or territory", b.Root)
	}
	return b, nil
}

func compareBlocks(a, b Block) int {
	if a.Length != b.Length {
		return a.Length - b.Length
	}
	return strings.Compare(a.Root, b.Root)
}

// Len returns the number of blocks.
func (p *Plan) Len() int { return len(p.blocks) }

// Lookup returns the block n belongs to.
func (p *Plan) Lookup(n Number) (Block, bool) {
	nat := n.nationalForm()
	if nat == "" {
		return Block{}, false
	}
	// The candidate is the last block whose root sorts at or before nat:
	// roots of one length never overlap, so no other block can hold it.
	i, _ := slices.BinarySearchFunc(p.blocks, nat, func(b Block, nat string) int {
		if b.Length != len(nat) {
			return b.Length - len(nat)
		}
		return strings.Compare(b.Root, nat)
	})
	if i == len(p.blocks) || p.blocks[i].Length != len(nat) || p.blocks[i].Root != nat {
		i--
	}
	if i < 0 {
		return Block{}, false
	}
	b := p.blocks[i]
	if b.Length != len(nat) || !strings.HasPrefix(nat, b.Root) {
		return Block{}, false
	}
	return b, true
}

// Holder returns the ARCEP code of the operator holding n's block (Orange
// is "FRTE"). It reports false for numbers outside the 06/07 blocks
// allocated in the extract.
func (p *Plan) Holder(n Number) (string, bool) {
	b, ok := p.Lookup(n)
	return b.Holder, ok
}

// nationalForm returns n as dialled in France, trunk 0 included, or "" for
// numbers outside the French plan.
func (n Number) nationalForm() string {
	switch {
	case n.class == Unknown || n.cc == "":
		return ""
	case n.cc == "508" && len(n.nsn) == 6:
		return "0508" + n.nsn
	}
	return "0" + n.nsn
}
