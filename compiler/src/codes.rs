//! The table of every diagnostic code clsf emits, with a one-line summary.
//! Codes are never reused; a removed diagnostic keeps its row.

/// One row of the code table.
#[derive(Debug)]
pub struct Code {
    /// `CLSF####`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: &'static str,
    /// What it means.
    pub summary: &'static str,
}

/// All codes, sorted.
pub const CODES: &[Code] = &[
    Code {
        code: "CLSF0001",
        severity: "error",
        summary: "syntax error",
    },
    Code {
        code: "CLSF0002",
        severity: "error",
        summary: "integer literal too large",
    },
    Code {
        code: "CLSF0101",
        severity: "error",
        summary: "unknown table",
    },
    Code {
        code: "CLSF0102",
        severity: "error",
        summary: "unknown column",
    },
    Code {
        code: "CLSF0103",
        severity: "error",
        summary: "unknown label",
    },
    Code {
        code: "CLSF0104",
        severity: "error",
        summary: "unknown group",
    },
    Code {
        code: "CLSF0105",
        severity: "error",
        summary: "duplicate definition",
    },
    Code {
        code: "CLSF0106",
        severity: "error",
        summary: "unknown mask",
    },
    Code {
        code: "CLSF0107",
        severity: "error",
        summary: "mask does not fit the column type",
    },
    Code {
        code: "CLSF0108",
        severity: "error",
        summary: "wrong number of mask arguments",
    },
    Code {
        code: "CLSF0109",
        severity: "error",
        summary: "no labels declared",
    },
    Code {
        code: "CLSF0110",
        severity: "warning",
        summary: "mask clause covers columns without a mask",
    },
    Code {
        code: "CLSF0111",
        severity: "error",
        summary: "malformed table name",
    },
];
