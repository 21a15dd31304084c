//! "Did you mean" suggestions for misspelled names (options, types, columns).

/// The candidate nearest to `name`, if it is close enough to be a likely typo: at most one edit
/// (insert, delete, substitute or swap two neighbours) per three characters, ignoring case.
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    let budget = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (c, strsim::damerau_levenshtein(&name, &c.to_lowercase())))
        .filter(|(_, distance)| *distance <= budget)
        .min_by_key(|(_, distance)| *distance)
        .map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn typos_find_their_target() {
        let names = ["subject", "server_url", "tag", "integer"];
        assert_eq!(nearest("tga", names), Some("tag"));
        assert_eq!(nearest("server_ulr", names), Some("server_url"));
        assert_eq!(nearest("SUBJECT", names), Some("subject"));
        assert_eq!(nearest("intger", names), Some("integer"));
        assert_eq!(nearest("zzz", names), None);
        assert_eq!(nearest("blob", names), None);
    }
}
