// SPDX-License-Identifier: Apache-2.0
import SystemCallSupport
import SystemPackage

/// The plugin binary, copied into the host's CNI bin folder: atomically (a runtime may be
/// executing the old one), executable by all, and only when it differs.
public enum PluginInstallation {
    /// Installs `settings.pluginBinary` as `settings.installedPlugin`; returns whether it wrote.
    @discardableResult
    public static func install(_ settings: AgentSettings) throws(SystemCallError) -> Bool {
        try AtomicFile.copy(settings.pluginBinary, to: settings.installedPlugin,
                            permissions: [.ownerReadWriteExecute, .groupReadExecute, .otherReadExecute])
    }
}
