/// The default name of a loop, `File.swift:line` of the call that created it, made once per
/// call site: the loops created at one site share one string. Built per loop, a name longer
/// than a small string (15 bytes) cost every loop an allocation of 80 bytes; the table grows
/// with the number of call sites in the program, not with the number of loops.
enum DefaultLoopName {
    private struct Site: Hashable {
        let fileID: String
        let line: Int
    }

    private static let names = LockedValue<[Site: String]>([:])

    static func at(fileID: String, line: Int) -> String {
        let site = Site(fileID: fileID, line: line)
        return names.withLock { names in
            if let name = names[site] { return name }
            let name = "\(fileID):\(line)"
            names[site] = name
            return name
        }
    }
}
