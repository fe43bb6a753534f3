//! PostgreSQL errors sorted into the batcher's failure classes.

use postgres::error::DbError;

use crate::error::{Failure, SinkError};

/// Where in a write an error happened: a lost connection while COMMIT was in
/// flight leaves the outcome unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Prepare,
    Rows,
    Commit,
}

/// What the batcher does with a server error of SQLSTATE `code`: the table in
/// the crate documentation, as a function.
///
/// ```
/// use prodkit_batch::{Failure, pg::failure_of};
/// assert_eq!(failure_of("23505"), Failure::Row); // unique_violation
/// assert_eq!(failure_of("40001"), Failure::Transient); // serialization_failure
/// ```
pub fn failure_of(code: &str) -> Failure {
    match code {
        // query_canceled: the statement timeout.
        "57014" => Failure::TooLarge,
        // admin_shutdown, crash_shutdown, cannot_connect_now; serialization
        // failure, deadlock, lock_not_available.
        "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "55P03" => Failure::Transient,
        _ => match code.get(..2) {
            // data_exception, integrity_constraint_violation, a trigger's
            // error (triggered_action_exception; PL/pgSQL's RAISE, P0001 by
            // default, and its other errors), with_check_option_violation (a
            // view's or a policy's check): the row.
            Some("22" | "23" | "09" | "P0" | "44") => Failure::Row,
            // connection_exception, insufficient_resources, system_error.
            Some("08" | "53" | "58") => Failure::Transient,
            // syntax or access rule, authorization, invalid catalog (database),
            // invalid schema name; and anything else we do not know: not retried.
            _ => Failure::Permanent,
        },
    }
}

/// The 1-based line a COPY error names ("COPY t, line 501, column v: ..."), as a
/// 0-based row index. Read from COPY's own context line: a trigger's error puts
/// its function's lines ahead of it ("PL/pgSQL function f() line 3 at RAISE").
pub(crate) fn copy_row(db: &DbError) -> Option<usize> {
    copy_line(db.where_()?)
}

fn copy_line(context: &str) -> Option<usize> {
    let copy = context
        .lines()
        .find(|l| l.trim_start().starts_with("COPY "))?;
    let after = copy.split(", line ").nth(1)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<usize>().ok()?.checked_sub(1)
}

/// Whether an error the server sent in answer to COMMIT leaves the outcome
/// unknown: a fatal error (the backend ends: 57P01 when an administrator
/// terminates it, 57P02 in a crash) may come after the commit record was
/// written; an ordinary error (a deferred constraint, a serialization failure)
/// means the transaction rolled back.
fn fatal(db: &DbError) -> bool {
    matches!(db.severity(), "FATAL" | "PANIC") || db.code().code().starts_with("08")
}

/// Which rows the client was encoding when a call failed: an error that neither
/// the server nor the connection raised is then a value that could not be
/// encoded for its column (a type mismatch, a value out of range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// The call encodes no row values.
    Nothing,
    /// The call encodes this row (a COPY row).
    Row(usize),
    /// The call encodes the whole batch (the unnest arrays): the row is unknown.
    Batch,
}

/// `error` as a [`SinkError`].
pub(crate) fn classify(
    error: &postgres::Error,
    step: Step,
    copy: bool,
    encoding: Encoding,
) -> SinkError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        let failure = if step == Step::Commit && fatal(db) {
            Failure::UnknownOutcome
        } else {
            failure_of(code)
        };
        let mut e = SinkError::new(failure, db.message()).with_code(code);
        if let Some(constraint) = db.constraint() {
            e = e.with_constraint(constraint);
        }
        if code == "23505" {
            e = e.already_stored();
        }
        if copy && e.failure == Failure::Row {
            e.row = copy_row(db);
        }
        return e;
    }
    let io = std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>());
    if error.is_closed() || io || encoding == Encoding::Nothing {
        let failure = if step == Step::Commit {
            Failure::UnknownOutcome
        } else {
            Failure::Transient
        };
        return SinkError::new(failure, with_causes(error));
    }
    // Not from the server and the connection is fine: a value could not be
    // encoded. With the row unknown the batcher bisects down to it.
    let e = SinkError::new(Failure::Row, with_causes(error));
    match encoding {
        Encoding::Row(row) => e.at_row(row),
        _ => e,
    }
}

/// An error and its causes, `: `-separated: rust-postgres says "error
/// performing TLS handshake" and leaves the reason to its source.
fn with_causes(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.ends_with(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_line_is_read_from_copys_own_context() {
        assert_eq!(copy_line("COPY t, line 501, column v: \"x\""), Some(500));
        assert_eq!(
            copy_line("PL/pgSQL function t_row() line 3 at RAISE\nCOPY t, line 48"),
            Some(47),
            "a trigger's line comes first"
        );
        assert_eq!(copy_line("PL/pgSQL function f() line 3 at RAISE"), None);
        assert_eq!(copy_line("COPY t, line 0"), None);
    }

    #[test]
    fn codes_map_to_classes() {
        for (code, failure) in [
            ("23505", Failure::Row),
            ("23503", Failure::Row),
            ("22P02", Failure::Row),
            ("22003", Failure::Row),
            ("P0001", Failure::Row),
            ("P0004", Failure::Row),
            ("09000", Failure::Row),
            ("44000", Failure::Row),
            ("08006", Failure::Transient),
            ("08001", Failure::Transient),
            ("53300", Failure::Transient),
            ("57P01", Failure::Transient),
            ("57P03", Failure::Transient),
            ("40001", Failure::Transient),
            ("40P01", Failure::Transient),
            ("55P03", Failure::Transient),
            ("57014", Failure::TooLarge),
            ("42P01", Failure::Permanent),
            ("42501", Failure::Permanent),
            ("28P01", Failure::Permanent),
            ("3D000", Failure::Permanent),
            ("XX000", Failure::Permanent),
        ] {
            assert_eq!(failure_of(code), failure, "{code}");
        }
    }
}
