//! The session's SQL-level cursors (`DECLARE`) and prepared statements
//! (`PREPARE`). A cursor or prepared statement runs what was decided when
//! it was made, so `FETCH`, `MOVE` and `EXECUTE` may name only those this
//! session made through SQL, and never a name that is also a protocol-level
//! portal or statement: those share PostgreSQL's namespace, and a portal
//! bound from a held statement or under a row limit is released or cut only
//! at its protocol `Execute`. No I/O: the relay asks and records.

use std::collections::HashMap;

use clsf_engine::SessionObject;
use clsf_engine::{ColumnUse, Denial, StatementReport};

use super::refusals;

/// What a cursor or prepared statement was decided to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Made {
    generation: u64,
    /// The statement's text, decided again after a reload.
    pub text: String,
    decision: &'static str,
    columns: Vec<ColumnUse>,
}

impl Made {
    /// True when `report` (the same text decided under the policy now in
    /// force) reads what this did, the same way.
    pub fn same_as(&self, report: &StatementReport) -> bool {
        report.decision == self.decision && report.columns == self.columns
    }
}

/// The names this session made, and what each was decided to read.
#[derive(Debug, Default)]
pub(super) struct SqlObjects {
    cursors: HashMap<String, Made>,
    prepared: HashMap<String, Made>,
}

/// What the relay knows of the protocol-level names and the policy.
pub(super) struct Context<'a> {
    /// The policy generation in force.
    pub generation: u64,
    /// True when a protocol-level portal has this name.
    pub is_portal: &'a dyn Fn(&str) -> bool,
    /// True when a protocol-level prepared statement has this name.
    pub is_statement: &'a dyn Fn(&str) -> bool,
    /// Decides a text under the policy in force (after a reload).
    pub redecide: &'a mut dyn FnMut(&str) -> Option<StatementReport>,
}

impl SqlObjects {
    /// Checks each statement's use of a cursor or prepared statement, in
    /// order, and records what each makes or drops, so that a `DECLARE`
    /// and its `FETCH` may share one query string. The first refused use
    /// refuses the whole string (what was recorded before it is harmless:
    /// a name is only ever allowed, never trusted for more).
    pub fn apply(
        &mut self,
        reports: &[StatementReport],
        cx: &mut Context<'_>,
    ) -> Result<(), Denial> {
        for report in reports {
            let Some(object) = &report.object else {
                continue;
            };
            match object {
                SessionObject::UseCursor(name) => {
                    check(
                        self.cursors.get(name),
                        name,
                        "cursor",
                        (cx.is_portal)(name),
                        cx,
                    )?;
                }
                SessionObject::Execute(name) => {
                    check(
                        self.prepared.get(name),
                        name,
                        "prepared statement",
                        (cx.is_statement)(name),
                        cx,
                    )?;
                }
                SessionObject::DeclareCursor(name) => {
                    self.cursors
                        .insert(name.clone(), made(report, cx.generation));
                }
                SessionObject::Prepare(name) => {
                    self.prepared
                        .insert(name.clone(), made(report, cx.generation));
                }
                SessionObject::CloseCursor(name) => {
                    self.cursors.remove(name);
                }
                SessionObject::CloseAllCursors => self.cursors.clear(),
                SessionObject::Deallocate(name) => {
                    self.prepared.remove(name);
                }
                SessionObject::DeallocateAll => self.prepared.clear(),
                SessionObject::DiscardAll => {
                    self.cursors.clear();
                    self.prepared.clear();
                }
            }
        }
        Ok(())
    }
}

fn made(report: &StatementReport, generation: u64) -> Made {
    Made {
        generation,
        text: report.text.clone(),
        decision: report.decision,
        columns: report.columns.clone(),
    }
}

fn check(
    made: Option<&Made>,
    name: &str,
    what: &str,
    protocol_level: bool,
    cx: &mut Context<'_>,
) -> Result<(), Denial> {
    let Some(made) = made else {
        return Err(refusals::unknown_object(what, name));
    };
    if protocol_level {
        return Err(refusals::ambiguous_object(what, name));
    }
    if made.generation != cx.generation {
        let same = (cx.redecide)(&made.text).is_some_and(|r| made.same_as(&r));
        if !same {
            return Err(refusals::object_changed(what, name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(text: &str, object: SessionObject) -> StatementReport {
        StatementReport::new(
            text.to_owned(),
            clsf_engine::Findings {
                decision: "mask",
                object: Some(object),
                ..Default::default()
            },
        )
    }

    fn run(
        objects: &mut SqlObjects,
        reports: &[StatementReport],
        portals: &[&str],
        generation: u64,
    ) -> Result<(), Denial> {
        let is_portal = |n: &str| portals.contains(&n);
        let is_statement = |n: &str| portals.contains(&n);
        let mut redecide = |t: &str| Some(report(t, SessionObject::DiscardAll));
        objects.apply(
            reports,
            &mut Context {
                generation,
                is_portal: &is_portal,
                is_statement: &is_statement,
                redecide: &mut redecide,
            },
        )
    }

    #[test]
    fn only_names_made_by_sql_in_this_session_may_be_used() {
        use SessionObject::*;
        let mut o = SqlObjects::default();
        let fetch = report("FETCH c", UseCursor("c".into()));
        let execute = report("EXECUTE p", Execute("p".into()));
        assert!(run(&mut o, std::slice::from_ref(&fetch), &[], 1).is_err());
        assert!(run(&mut o, std::slice::from_ref(&execute), &[], 1).is_err());
        // Declared and fetched in one string.
        run(
            &mut o,
            &[
                report("DECLARE c …", DeclareCursor("c".into())),
                fetch.clone(),
            ],
            &[],
            1,
        )
        .unwrap();
        run(
            &mut o,
            &[report("PREPARE p …", Prepare("p".into())), execute.clone()],
            &[],
            1,
        )
        .unwrap();
        // A protocol-level portal or statement of the same name: refused.
        let e = run(&mut o, std::slice::from_ref(&fetch), &["c"], 1).unwrap_err();
        assert!(e.message.contains("protocol-level"), "{}", e.message);
        assert!(run(&mut o, std::slice::from_ref(&execute), &["p"], 1).is_err());
        // A reload that decides it the same way keeps it usable; one that
        // does not (here the re-decision reads nothing) refuses it.
        let mut changed = SqlObjects::default();
        let mut declared = report("DECLARE c …", DeclareCursor("c".into()));
        declared.findings_mut().decision = "allow";
        run(&mut changed, &[declared], &[], 1).unwrap();
        let e = run(&mut changed, std::slice::from_ref(&fetch), &[], 2).unwrap_err();
        assert!(e.message.contains("policy changed"), "{}", e.message);
        run(&mut o, std::slice::from_ref(&fetch), &[], 2).unwrap();
        // Closed, deallocated, discarded: gone.
        run(
            &mut o,
            &[report("CLOSE c", CloseCursor("c".into()))],
            &[],
            2,
        )
        .unwrap();
        assert!(run(&mut o, std::slice::from_ref(&fetch), &[], 2).is_err());
        run(&mut o, &[report("DISCARD ALL", DiscardAll)], &[], 2).unwrap();
        assert!(run(&mut o, std::slice::from_ref(&execute), &[], 2).is_err());
    }
}
