import SkiffRaft

/// Why the WAL or a snapshot could not be read back as written, or could not be written.
///
/// Names the file, the byte offset and, where known, the log indices affected, so an operator can tell
/// which data is at stake. A torn tail is not an error: `open` cuts it off and reports it.
public struct WALError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A record's checksum does not match: the bytes changed after they were made durable.
        case checksumMismatch = "checksum mismatch"
        /// A record or header has a field outside its allowed range (a length, a type, a reserved byte).
        case malformed = "malformed record"
        /// The file says it was written by a format version this build cannot read.
        case unsupportedVersion = "unsupported version"
        /// A single append is larger than a frame may be.
        case recordTooLarge = "record too large"
        /// Segments do not join into one log: an index gap, or a term that contradicts the previous segment.
        case discontinuity = "discontinuity"
        /// The directory holds no WAL, or the file is not one of ours.
        case notAWAL = "not a WAL"
        /// A snapshot file failed verification, or no usable snapshot and log combination exists.
        case badSnapshot = "bad snapshot"
        /// The operating system refused an operation.
        case io = "I/O error"
        /// The WAL was closed, or stopped accepting writes after an earlier write failed.
        case unavailable = "unavailable"
    }

    public var code: Code
    public var file: String
    public var offset: Int64?
    public var indices: ClosedRange<UInt64>?
    public var detail: String

    public init(_ code: Code, file: String, offset: Int64? = nil, indices: ClosedRange<UInt64>? = nil, _ detail: String) {
        self.code = code
        self.file = file
        self.offset = offset
        self.indices = indices
        self.detail = detail
    }

    public var description: String {
        var text = "\(code.rawValue) in \(file)"
        if let offset { text += " at byte \(offset)" }
        if let indices { text += " (log indices \(indices.lowerBound)...\(indices.upperBound))" }
        return text + ": \(detail)"
    }
}

/// Runs `body`, passing a `WALError` through and wrapping anything else as an I/O error on `file`.
func withWALErrors<T>(file: String, _ body: () throws -> T) throws(WALError) -> T {
    do { return try body() } catch let error as WALError { throw error } catch {
        throw WALError(.io, file: file, "\(error)")
    }
}
