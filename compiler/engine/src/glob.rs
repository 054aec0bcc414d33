//! Glob matching for names (`*` any run of characters, `?` exactly one).
//! Written by hand: the glob crates match file paths (`*` stops at `/`,
//! character classes, escapes), and policies match dotted SQL names and
//! claim values, where a plain two-wildcard matcher says exactly what the
//! spec promises.

/// True when `text` matches `pattern` in full.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point per `*`: linear in practice,
    // never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches("*.email", "public.email"));
        assert!(matches(
            "repo:acme/*:ref:*",
            "repo:acme/shop:ref:refs/heads/main"
        ));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*", ""));
        assert!(!matches("*.email", "public.emails"));
        assert!(matches("**x*", "yyxyy"));
    }
}
