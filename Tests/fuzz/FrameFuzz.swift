// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the daemon's frame decoder (FrameSplitter + FrameCodec.decodeClient), the bytes a
// hostile local peer controls, and the CLI's decoder of daemon frames (FrameCodec.decodeDaemon).
// Built by `make fuzz-swift` with the sources of MFAProtocol compiled into this module (see README.md).
//
// Input: byte 0 chooses how the rest is cut into reads (as a stream arrives in pieces); the rest is
// the stream. Besides crashes and sanitizer reports it traps when a decoded message does not survive
// encode → decode unchanged, or the splitter holds more than one frame's worth of bytes.

@_cdecl("LLVMFuzzerTestOneInput")
public func frameFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let chunk = Int(bytes[0] % 16) + 1
    let stream = bytes[1...]

    var splitter = FrameSplitter()
    var offset = stream.startIndex
    streaming: while offset < stream.endIndex {
        // Read no more than the splitter asks for, as the daemon does (memory stays bounded).
        let want = min(chunk, max(1, splitter.wantedBytes))
        let end = min(stream.endIndex, offset + want)
        splitter.append(stream[offset..<end])
        offset = end
        require(splitter.buffer.count <= 4 + WireProtocol.maximumPayload, "splitter holds more than one frame")
        while true {
            let payload: [UInt8]
            do {
                guard let next = try splitter.nextPayload() else { break }
                payload = next
            } catch {
                break streaming
            }
            checkClient(payload)
            checkDaemon(payload)
        }
    }
    // The whole input as one payload too, so the decoders see bytes no length header framed.
    checkClient(Array(stream))
    checkDaemon(Array(stream))
    return 0
}

func checkClient(_ payload: [UInt8]) {
    guard let message = try? FrameCodec.decodeClient(payload) else { return }
    let frame: [UInt8]
    do { frame = try FrameCodec.encode(message) } catch { fatalError("decoded client message does not encode: \(error)") }
    let again = try? FrameCodec.decodeClient(Array(frame[4...]))
    require(again == message, "client message changed on encode → decode")
}

func checkDaemon(_ payload: [UInt8]) {
    guard let message = try? FrameCodec.decodeDaemon(payload) else { return }
    let frame: [UInt8]
    do { frame = try FrameCodec.encode(message) } catch { fatalError("decoded daemon message does not encode: \(error)") }
    let again = try? FrameCodec.decodeDaemon(Array(frame[4...]))
    require(again == message, "daemon message changed on encode → decode")
}

/// Like `precondition`, but the message survives `-O`, so a finding says which rule broke.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
