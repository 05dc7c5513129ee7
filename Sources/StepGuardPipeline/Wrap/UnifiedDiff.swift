/// A line-based unified diff (LCS), enough for workflow files.
enum UnifiedDiff {
    static func make(from old: String, to new: String, path: String, context: Int = 3) -> String {
        guard old != new else { return "" }
        func lines(_ text: String) -> [String] {
            var result = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
            if text.unicodeScalars.last == "\n" { result.removeLast() }
            return result
        }
        let a = lines(old)
        let b = lines(new)
        // LCS table from the end.
        var table = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                table[i][j] = a[i] == b[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
            }
        }
        enum Op { case same(Int, Int), del(Int), add(Int) }
        var ops: [Op] = []
        var i = 0, j = 0
        while i < a.count || j < b.count {
            if i < a.count, j < b.count, a[i] == b[j] { ops.append(.same(i, j)); i += 1; j += 1 }
            else if i < a.count, j == b.count || table[i + 1][j] >= table[i][j + 1] { ops.append(.del(i)); i += 1 }
            else { ops.append(.add(j)); j += 1 }
        }
        let changed = ops.indices.filter { if case .same = ops[$0] { false } else { true } }
        let name = path.hasPrefix("/") ? path : "a/" + path
        let newName = path.hasPrefix("/") ? path : "b/" + path
        var out = "--- \(name)\n+++ \(newName)\n"
        var index = 0
        while index < changed.count {
            let start = max(0, changed[index] - context)
            var end = min(ops.count - 1, changed[index] + context)
            var next = index + 1
            while next < changed.count, changed[next] - context <= end + 1 {
                end = min(ops.count - 1, changed[next] + context)
                next += 1
            }
            var oldStart = 0, newStart = 0, oldCount = 0, newCount = 0
            var body = ""
            // Positions of the hunk's first line in each file.
            var oi = 0, nj = 0
            for k in 0..<start {
                switch ops[k] { case .same: oi += 1; nj += 1; case .del: oi += 1; case .add: nj += 1 }
            }
            oldStart = oi + 1; newStart = nj + 1
            for k in start...end {
                switch ops[k] {
                case let .same(x, _): body += " " + a[x] + "\n"; oldCount += 1; newCount += 1
                case let .del(x): body += "-" + a[x] + "\n"; oldCount += 1
                case let .add(y): body += "+" + b[y] + "\n"; newCount += 1
                }
            }
            if oldCount == 0 { oldStart -= 1 }
            if newCount == 0 { newStart -= 1 }
            out += "@@ -\(oldStart),\(oldCount) +\(newStart),\(newCount) @@\n" + body
            index = next
        }
        return out
    }
}
