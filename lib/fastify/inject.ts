/**
 * `app.injectWS(path, options)`: a WebSocket to one of the app's routes,
 * in-process, without `listen` (see `lib/core/inject.ts`). The upgrade goes
 * through the plugin's own `upgrade` listener, so the router, the route's
 * hooks and its schemas run as for a real client.
 */
import type { FastifyInstance } from 'fastify'
import { injectUpgrade, type InjectedSocket, type InjectWSOptions, type UpgradeListener } from '../core/inject.js'

declare module 'fastify' {
  interface FastifyInstance<RawServer, RawRequest, RawReply, Logger, TypeProvider> {
    /**
     * Opens a WebSocket to `path` in-process, without `listen`: the request
     * is routed, and the route's hooks and schemas run, as for a real
     * upgrade. Resolves once the 101 has arrived; rejects with an
     * `UpgradeRefusedError` (`statusCode`, `headers`, `body`) when it is
     * answered otherwise (a hook's 401, a 404, a 400…).
     *
     * `TSend` is what the client's `send()` takes (the route's `message`
     * schema type); `TMessage` what `expectJson()` returns (its `send` schema type).
     */
    injectWS<TSend = unknown, TMessage = unknown>(path: string, options?: InjectWSOptions): Promise<InjectedSocket<TSend, TMessage>>
  }
}

/** Decorates `fastify` with `injectWS`, upgrading through `onUpgrade`. */
export function decorateInjectWS (fastify: FastifyInstance, onUpgrade: UpgradeListener): void {
  fastify.decorate('injectWS', async function injectWS (this: FastifyInstance, path: string, options?: InjectWSOptions) {
    // Like `inject()`: routes declared so far are only routable once the app is ready.
    await this.ready()
    return injectUpgrade(onUpgrade, path, options)
  })
}
