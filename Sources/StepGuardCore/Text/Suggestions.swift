/// The Levenshtein distance between `a` and `b` (insertions, deletions and substitutions of characters).
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for (i, ca) in a.enumerated() {
        var current = [i + 1]
        for (j, cb) in b.enumerated() {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}

/// The closest candidate to `word` (ignoring case) by edit distance, when it is close enough to be
/// a likely typo: for "did you mean …?" hints.
public func nearest(to word: String, in candidates: [String]) -> String? {
    let target = word.lowercased()
    let scored = candidates.map { ($0, editDistance(target, $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(2, word.count / 3) ? best.0 : nil
}
