// SPDX-License-Identifier: Apache-2.0
import Logging
import MFACore
import MFAProtocol
import MFAStore

/// A part of the daemon's rules (the login flow, the admin verbs, self-service, methods) working on
/// what `Authority` holds for all of them: the injected config, store, environment (clock,
/// accounts, randomness) and notifier, and the books, delivery state and pending enrollments.
protocol AuthorityPart: AnyObject {
    var shared: Authority { get }
}

extension AuthorityPart {
    var config: DaemonConfig { shared.config }
    var store: any FactorStore { shared.store }
    var environment: DaemonEnvironment { shared.environment }
    var logger: Logger { shared.logger }
    var books: any Bookkeeper { shared.books }
    var notifier: Notifier { shared.notifier }
    var delivery: DeliveryState { shared.delivery }
    var invites: InviteKeeper { shared.invites }
    var pending: PendingEnrollments {
        get { shared.pending }
        set { shared.pending = newValue }
    }
}
