//! Any text: the policy parser returns a tree or diagnostics with valid
//! spans, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let res = clsf_lang::parse(clsf_lang::FileId(0), text);
    for d in &res.diagnostics {
        if let Some((span, _)) = &d.primary {
            assert!(span.start <= span.end && span.end <= text.len());
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        }
    }
});
