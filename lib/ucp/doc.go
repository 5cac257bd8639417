// Package ucp provides the UCP/EMI codec (CMG EMI-UCP 4.0) and a client
// session for talking to an SMSC over TCP.
//
// The codec is split in three layers:
//
//   - Reader cuts a byte stream into frames (STX … ETX), skipping junk and
//     bounding the frame size.
//   - ParseHeader, Decode and DecodeInto validate a frame (LEN, checksum,
//     field count) and turn it into typed operations (Submit, Deliver,
//     Notification, Login, Alert, Call, RawOp) or a Result (ACK/NACK).
//     AppendFrame encodes them back.
//   - Client runs a session: login (OT 60), windowed operations with
//     TRN allocation and out-of-order result matching, keep-alive (OT 31),
//     and answers to the operations the SMSC sends (52, 53, 01). Serve runs
//     the same sessions on connections the SMSC opens to us.
//
// DR correlation: the 51 ACK carries "AdC:SCTS" (SubmitResult.Key); the 53
// carries the original recipient in OAdC and the same SCTS
// (Notification.Key). Both give a Key to match on, as Kannel does. SCTS has
// one-second resolution, so a DR store should tolerate a collision.
//
// Field names follow the CMG specification (AdC, OAdC, NRq, XSer, …) so that
// code can be checked against the spec table by eye. Addresses are personal
// data: errors and log lines produced here never contain them.
package ucp
