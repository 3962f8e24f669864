// Peer-supplied text on its way into a log line. A machine name in an AUTH_SYS credential, a
// path in a file service call or any other string a peer chose may hold a newline (a forged
// second log line), an escape sequence (terminal control) or megabytes. Logs get it with
// control characters as \xNN and cut at a fixed length.

/// `text` fit for a log line: printable ASCII and other Unicode scalars kept, C0 controls,
/// DEL and C1 controls written as `\xNN`, a backslash doubled, at most `limit` scalars
/// (then "…").
public func logSafe(_ text: some StringProtocol, limit: Int = 256) -> String {
    var out = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count == limit {
            out += "…"
            break
        }
        count += 1
        switch scalar.value {
        case 0x5c:
            out += "\\\\"
        case 0..<0x20, 0x7f..<0xa0:
            let hex = String(scalar.value, radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        default:
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}
