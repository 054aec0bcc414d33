//! Any text: the policy parser returns a tree or diagnostics with valid
//! spans, and never panics; a text that parses formats to text that parses
//! again and is a fixed point of the formatter.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let res = clsf_lang::parse(clsf_lang::FileId(0), text);
    for d in &res.diagnostics {
        if let Some((span, _)) = &d.primary {
            assert!(span.start <= span.end && span.end <= text.len());
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end));
        }
    }
    if res.diagnostics.is_empty() {
        let formatted = clsf_lang::format(&res.file, text);
        let again = clsf_lang::parse(clsf_lang::FileId(0), &formatted);
        assert!(
            again.diagnostics.is_empty(),
            "formatted text does not parse:\n{formatted}"
        );
        assert_eq!(clsf_lang::format(&again.file, &formatted), formatted);
    }
});
