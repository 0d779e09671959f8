//! CSV writing for exports and error reports: RFC 4180 quoting, and formula neutralisation —
//! a cell a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) is
//! written with a leading `'`, so `=cmd|' /C calc'!A0` arrives as text.

/// True when a spreadsheet would read the cell as a formula.
pub fn is_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// The cell with a leading `'` when it would be read as a formula.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if is_formula(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Appends one cell (quoted when needed) without neutralising it.
fn push_raw(out: &mut String, cell: &str) {
    if cell.contains([',', '"', '\n', '\r']) || cell.starts_with(' ') || cell.ends_with(' ') {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

/// Appends one record, every cell neutralised, ending in CRLF.
pub fn push_record<S: AsRef<str>>(out: &mut String, cells: &[S]) {
    push_record_except(out, cells, None);
}

/// Like [`push_record`], but the cell at `trusted` is written as is: a column of canonical
/// values we wrote ourselves (E.164 phone numbers, `+` and digits only) that a spreadsheet
/// reads as numbers, never as a call.
pub fn push_record_except<S: AsRef<str>>(out: &mut String, cells: &[S], trusted: Option<usize>) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if Some(i) == trusted {
            push_raw(out, c.as_ref());
        } else {
            push_raw(out, &neutralise(c.as_ref()));
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_cells_quoted() {
        let mut s = String::new();
        push_record(
            &mut s,
            &[
                "=cmd|' /C calc'!A0",
                "a,b",
                "say \"hi\"",
                "@x",
                "-1",
                "plain",
                "\tt",
            ],
        );
        assert_eq!(
            s,
            "'=cmd|' /C calc'!A0,\"a,b\",\"say \"\"hi\"\"\",'@x,'-1,plain,'\tt\r\n"
        );
    }
}
