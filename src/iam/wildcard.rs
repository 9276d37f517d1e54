//! IAM's glob: `*` matches any run of characters (including none), `?` exactly one.

/// Whether `text` matches `pattern`. Iterative with one backtrack point, so a pattern
/// of many stars costs O(pattern × text) at worst, never exponential time.
pub fn matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    if !pattern.contains(['*', '?']) {
        return if ignore_case {
            pattern.eq_ignore_ascii_case(text) || pattern.to_lowercase() == text.to_lowercase()
        } else {
            pattern == text
        };
    }
    if pattern == "*" {
        return true;
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
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

/// ARN matching as ArnLike and policy resources do it: each of the six colon-separated
/// parts is matched on its own, so `*` never spans a colon between parts.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    if p.len() > a.len() {
        return false;
    }
    // A short pattern's last part matches the rest of the ARN: `arn:aws:ecr:*`.
    let last = p.len() - 1;
    let rest = a[last..].join(":");
    p[..last].iter().zip(&a).all(|(p, a)| matches(p, a, false))
        && (p.len() == a.len() || p[last].ends_with('*'))
        && matches(p[last], &rest, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("ecr:*", "ecr:PutImage", false));
        assert!(matches("ecr:Batch*", "ecr:BatchGetImage", false));
        assert!(!matches("ecr:Batch*", "ecr:PutImage", false));
        assert!(matches("ECR:putimage", "ecr:PutImage", true));
        assert!(matches("a?c", "abc", false));
        assert!(!matches("a?c", "ac", false));
        assert!(matches("*a*b*c*", "xxaxxbxxcxx", false));
        assert!(!matches("*a*b*c", "xxaxxbxxcxx", false));
        assert!(matches("", "", false));
        assert!(!matches("", "x", false));
        assert!(matches("**", "", false));
    }

    #[test]
    fn arns_match_part_by_part() {
        let arn = "arn:aws:ecr:us-east-1:111122223333:repository/team/app";
        assert!(arn_matches(
            "arn:aws:ecr:*:111122223333:repository/team/*",
            arn
        ));
        assert!(arn_matches("arn:aws:ecr:us-east-1:*:repository/*", arn));
        assert!(!arn_matches(
            "arn:aws:ecr:us-east-1:444455556666:repository/*",
            arn
        ));
        assert!(arn_matches("*", arn));
        assert!(arn_matches("arn:aws:ecr:*", arn));
        assert!(!arn_matches("arn:aws:ecr", arn));
        assert!(!arn_matches("arn:aws:*:us-west-2:*", arn));
    }
}
