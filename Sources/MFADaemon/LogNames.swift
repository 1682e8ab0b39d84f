// SPDX-License-Identifier: Apache-2.0
import MFAProtocol

extension VerdictResult {
    /// The word a log line shows for a verdict (what `"\(result)"` printed), spelled out because
    /// string interpolation of an enum without a description goes through reflection (`Mirror`):
    /// ≈ 7 k instructions on every login line.
    var logName: String {
        switch self {
        case .success: return "success"
        case .denied: return "denied"
        case .ignore: return "ignore"
        case .locked: return "locked"
        case .unavailable: return "unavailable"
        case .busy: return "busy"
        }
    }
}
