// The OpenAPI document served at /openapi.yaml: a copy of docs/openapi.yaml, kept equal by
// ServerTests (`theServedDocumentIsDocsOpenAPI`). Edit docs/openapi.yaml, then copy it here.
enum OpenAPIDocument {
    static let yaml = #"""
openapi: 3.1.0
info:
  title: fapiao
  version: 0.1.0
  summary: An event-sourced ledger for Chinese VAT invoices, over HTTP.
  description: |
    Ingestion of CloudEvents (docs/events.md), the invoice state and history, the forensic
    `why`, status lists, and the log and projection changes as Server-Sent Events.
    Errors are RFC 9457 problem details (`application/problem+json`). See docs/http-api.md.
  license:
    name: Proprietary
    identifier: LicenseRef-Proprietary
servers:
  - url: http://127.0.0.1:8080
security:
  - bearer: []
tags:
  - name: ingestion
  - name: queries
  - name: streams
  - name: subscriptions
  - name: operations
paths:
  /v1/events:
    post:
      tags: [ingestion]
      operationId: appendEvents
      summary: Append a batch of events, atomically (role writer).
      description: |
        Every event is validated (envelope and typed data) before anything is appended; one bad
        event refuses the whole request, with every problem listed, and nothing is recorded.
        Idempotent on (source, id): sending an event again reports its original position. An
        invoice that breaks a rule is recorded as sent, with a `fapiao.ledger.flagged` event
        beside it. The optional extension attribute `expectedversion` is the version the
        event's stream must have first (0: the stream must not exist).
      requestBody:
        required: true
        content:
          application/cloudevents-batch+json:
            schema:
              type: array
              minItems: 1
              items:
                $ref: '#/components/schemas/CloudEvent'
          application/cloudevents+json:
            schema:
              $ref: '#/components/schemas/CloudEvent'
          application/json:
            schema:
              oneOf:
                - $ref: '#/components/schemas/CloudEvent'
                - type: array
                  minItems: 1
                  items:
                    $ref: '#/components/schemas/CloudEvent'
      responses:
        '200':
          description: Appended (or already present); one position per event sent.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/AppendAnswer'
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '409':
          description: An id reused with other content, or a stream expectation that did not hold. Nothing was recorded.
          content:
            application/problem+json:
              schema:
                $ref: '#/components/schemas/Problem'
        '413':
          description: The body is larger than the server accepts.
          content:
            application/problem+json:
              schema:
                $ref: '#/components/schemas/Problem'
        '415':
          description: Not a CloudEvents JSON content type.
          content:
            application/problem+json:
              schema:
                $ref: '#/components/schemas/Problem'
        '503':
          description: The writer is overloaded or the server is shutting down. Nothing was recorded; retry after Retry-After.
          headers:
            Retry-After:
              schema:
                type: integer
          content:
            application/problem+json:
              schema:
                $ref: '#/components/schemas/Problem'
        '507':
          description: The ledger's map or the disk is full. Nothing was recorded; the ledger is intact.
          content:
            application/problem+json:
              schema:
                $ref: '#/components/schemas/Problem'
    get:
      tags: [streams]
      operationId: streamEvents
      summary: The log as Server-Sent Events, history then live (role subscriber or auditor).
      description: |
        Each event has `id:` its ledger position, `event:` its type and `data:` the CloudEvent
        JSON with the ledger's extension attributes (ledgerposition, ledgertime, ledgerhash,
        ledgerprevhash). Reconnect with the standard `Last-Event-ID` header to resume after it.
        A `: heartbeat` comment comes every 15 s on an idle stream; when the filter or scope
        skipped events, it carries an `id:` so a reconnect resumes after them. A token limited to
        systems or sellers receives only the events of its scope.
      parameters:
        - name: from
          in: query
          description: First position (1 = the beginning). Default - only what is appended from now on.
          schema:
            type: integer
            minimum: 1
        - name: type
          in: query
          description: Only types starting with this, e.g. `fapiao.delivery.`.
          schema:
            type: string
        - name: subject
          in: query
          description: Only this stream (an invoice key, `system/<id>`, `system/<id>/user/<id>`).
          schema:
            type: string
        - $ref: '#/components/parameters/LastEventID'
      responses:
        '200':
          description: A text/event-stream that lasts until the client or the server closes it.
          content:
            text/event-stream:
              schema:
                type: string
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '429':
          $ref: '#/components/responses/TooManySubscribers'
  /v1/invoices/{key}:
    get:
      tags: [queries]
      operationId: getInvoice
      summary: An invoice's current state in every system (role reader or auditor).
      parameters:
        - $ref: '#/components/parameters/Key'
        - $ref: '#/components/parameters/MinPosition'
      responses:
        '200':
          description: The invoice_state projection's row (as `fapiao show --format json`).
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/InvoiceState'
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
        '503':
          $ref: '#/components/responses/ProjectionBehind'
  /v1/invoices/{key}/timeline:
    get:
      tags: [queries]
      operationId: getTimeline
      summary: The invoice's history with what each observer saw after each event (role reader or auditor).
      parameters:
        - $ref: '#/components/parameters/Key'
        - $ref: '#/components/parameters/At'
        - $ref: '#/components/parameters/KnownAt'
        - $ref: '#/components/parameters/Position'
      responses:
        '200':
          description: As `fapiao replay KEY --format json`.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Replay'
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
  /v1/invoices/{key}/why:
    get:
      tags: [queries]
      operationId: why
      summary: Whether the invoice is visible in a system (to a user), and if not, why (role reader or auditor).
      description: |
        The same answer as `fapiao why KEY --system SYSTEM --format json` (docs/events.md). A
        token limited to systems may ask only about its systems, and gets 404 for an invoice
        outside its scope or not in the ledger alike.
      parameters:
        - $ref: '#/components/parameters/Key'
        - name: system
          in: query
          required: true
          schema:
            type: string
        - name: user
          in: query
          description: Evaluate this user's access and most recent recorded query.
          schema:
            type: string
        - $ref: '#/components/parameters/At'
        - $ref: '#/components/parameters/KnownAt'
        - $ref: '#/components/parameters/Position'
        - name: number
          in: query
          description: Query criteria (instead of the user's recorded query) - the number searched for.
          schema:
            type: string
        - $ref: '#/components/parameters/IssuedFrom'
        - $ref: '#/components/parameters/IssuedTo'
        - $ref: '#/components/parameters/BuyerName'
        - $ref: '#/components/parameters/SellerName'
        - $ref: '#/components/parameters/Status'
      responses:
        '200':
          description: The forensic answer.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/WhyAnswer'
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
  /v1/systems/{system}/invoices:
    get:
      tags: [queries]
      operationId: listInvoices
      summary: A receiving system's invoices by status and issue date, in pages (role reader or auditor).
      parameters:
        - name: system
          in: path
          required: true
          schema:
            type: string
        - $ref: '#/components/parameters/Status'
        - $ref: '#/components/parameters/IssuedFrom'
        - $ref: '#/components/parameters/IssuedTo'
        - $ref: '#/components/parameters/BuyerName'
        - $ref: '#/components/parameters/SellerName'
        - name: limit
          in: query
          schema:
            type: integer
            minimum: 1
            maximum: 10000
            default: 100
        - name: cursor
          in: query
          description: The `next` of the previous page.
          schema:
            type: string
        - $ref: '#/components/parameters/MinPosition'
      responses:
        '200':
          description: One page, ordered by issue date then key.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/InvoiceListAnswer'
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '503':
          $ref: '#/components/responses/ProjectionBehind'
  /v1/projections/{name}/changes:
    get:
      tags: [streams]
      operationId: streamProjectionChanges
      summary: A projection's row changes as Server-Sent Events, once applied (role subscriber or auditor).
      description: |
        `id:` is the position of the event that changed the rows, `event:` is `change`, `data:`
        is `{"position", "type", "projection", "keys"}`. Resumable with `Last-Event-ID`.
      parameters:
        - name: name
          in: path
          required: true
          schema:
            type: string
            enum: [invoice_state, status_views, search, access, systems]
        - name: from
          in: query
          description: First position. Default - changes from the projection's checkpoint on.
          schema:
            type: integer
            minimum: 1
        - $ref: '#/components/parameters/LastEventID'
      responses:
        '200':
          description: A text/event-stream.
          content:
            text/event-stream:
              schema:
                type: string
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
        '429':
          $ref: '#/components/responses/TooManySubscribers'
  /v1/subscriptions/{name}:
    parameters:
      - $ref: '#/components/parameters/SubscriptionName'
    put:
      tags: [subscriptions]
      operationId: putSubscription
      summary: Create or update a durable named subscription (role subscriber or auditor).
      description: |
        Created: the cursor is `from - 1` (without `from`, the head - only new events), the owner
        the calling token. Updated: the filters are replaced and the cursor kept (`from` is
        ignored). Only the owner (or an auditor) may update it.
      requestBody:
        required: false
        content:
          application/json:
            schema:
              $ref: '#/components/schemas/SubscriptionRequest'
      responses:
        '200':
          description: Updated.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/SubscriptionStatus'
        '201':
          description: Created.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/SubscriptionStatus'
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
    get:
      tags: [subscriptions]
      operationId: getSubscription
      summary: A subscription's filters, cursor and lag (its owner or an auditor).
      responses:
        '200':
          description: The subscription.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/SubscriptionStatus'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
    delete:
      tags: [subscriptions]
      operationId: deleteSubscription
      summary: Delete a subscription (its owner or an auditor).
      responses:
        '204':
          description: Deleted.
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
  /v1/subscriptions/{name}/ack:
    parameters:
      - $ref: '#/components/parameters/SubscriptionName'
    post:
      tags: [subscriptions]
      operationId: acknowledgeSubscription
      summary: Acknowledge processing up to a position; the cursor becomes max(cursor, position).
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [position]
              properties:
                position:
                  type: integer
                  minimum: 0
                  description: At most the head position (else 400).
      responses:
        '200':
          description: The subscription after the acknowledgement.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/SubscriptionStatus'
        '400':
          $ref: '#/components/responses/BadRequest'
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
  /v1/subscriptions/{name}/events:
    parameters:
      - $ref: '#/components/parameters/SubscriptionName'
    get:
      tags: [subscriptions, streams]
      operationId: streamSubscription
      summary: The log after the subscription's cursor, with its filters, as Server-Sent Events.
      description: |
        Frames as `GET /v1/events`. Starts at cursor + 1, or after `Last-Event-ID` (or at
        `from`) when that is later. Shows what the owner's scope admits, whoever reads it.
        Reading does not move the cursor; acknowledge with `POST .../ack`.
      parameters:
        - name: from
          in: query
          description: First position, used only when later than cursor + 1.
          schema:
            type: integer
            minimum: 1
        - $ref: '#/components/parameters/LastEventID'
      responses:
        '200':
          description: A text/event-stream.
          content:
            text/event-stream:
              schema:
                type: string
        '401':
          $ref: '#/components/responses/Unauthorized'
        '403':
          $ref: '#/components/responses/Forbidden'
        '404':
          $ref: '#/components/responses/NotFound'
        '429':
          $ref: '#/components/responses/TooManySubscribers'
  /healthz:
    get:
      tags: [operations]
      operationId: health
      summary: Liveness, the head position and the projections' lag.
      security: []
      responses:
        '200':
          description: Serving.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Health'
  /metrics:
    get:
      tags: [operations]
      operationId: metrics
      summary: Prometheus text format (any valid token).
      responses:
        '200':
          description: Counters, histograms and gauges (docs/http-api.md lists them).
          content:
            text/plain:
              schema:
                type: string
        '401':
          $ref: '#/components/responses/Unauthorized'
  /openapi.yaml:
    get:
      tags: [operations]
      operationId: openAPI
      summary: This document.
      security: []
      responses:
        '200':
          description: OpenAPI 3.1.
          content:
            application/yaml:
              schema:
                type: string
components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      description: A token from the server's --tokens file. Without --tokens the server listens on 127.0.0.1 only and needs none.
  parameters:
    Key:
      name: key
      in: path
      required: true
      description: The invoice key as people type it (20 digits, or CODE-NUMBER; spaces, full-width digits and hyphens are normalised).
      schema:
        type: string
    At:
      name: at
      in: query
      description: A real-world moment - RFC 3339, '2024-12-31 18:00' (CST) or a date (end of that day, CST).
      schema:
        type: string
    KnownAt:
      name: knownAt
      in: query
      description: Only what the ledger had recorded by then (same formats as at).
      schema:
        type: string
    Position:
      name: position
      in: query
      description: The ledger as it stood after this position.
      schema:
        type: integer
        minimum: 0
    MinPosition:
      name: minPosition
      in: query
      description: Read your writes - wait (up to 10 s) until the projection has applied the log through this position.
      schema:
        type: integer
        minimum: 0
    IssuedFrom:
      name: issuedFrom
      in: query
      schema:
        type: string
        format: date
    IssuedTo:
      name: issuedTo
      in: query
      description: Inclusive.
      schema:
        type: string
        format: date
    BuyerName:
      name: buyerName
      in: query
      schema:
        type: string
    SellerName:
      name: sellerName
      in: query
      schema:
        type: string
    Status:
      name: status
      in: query
      description: Comma-separated, or repeated.
      schema:
        type: string
        examples: [pending_review,approved]
    SubscriptionName:
      name: name
      in: path
      required: true
      description: The subscription's name.
      schema:
        type: string
        pattern: '^[A-Za-z0-9._-]{1,128}$'
    LastEventID:
      name: Last-Event-ID
      in: header
      description: Resume after this position (sent by EventSource clients on reconnect).
      schema:
        type: integer
        minimum: 0
  responses:
    BadRequest:
      description: The request is malformed, or events were refused (every problem listed; nothing recorded).
      content:
        application/problem+json:
          schema:
            $ref: '#/components/schemas/Problem'
    Unauthorized:
      description: No token, or not a valid one.
      headers:
        WWW-Authenticate:
          schema:
            type: string
      content:
        application/problem+json:
          schema:
            $ref: '#/components/schemas/Problem'
    Forbidden:
      description: The token's role does not allow this, or it asks about a system outside its scope.
      content:
        application/problem+json:
          schema:
            $ref: '#/components/schemas/Problem'
    NotFound:
      description: Not in the ledger, or outside the token's scope (indistinguishable). didYouMean lists near-miss keys in scope.
      content:
        application/problem+json:
          schema:
            $ref: '#/components/schemas/Problem'
    TooManySubscribers:
      description: The server serves as many live streams as it allows.
      headers:
        Retry-After:
          schema:
            type: integer
      content:
        application/problem+json:
          schema:
            $ref: '#/components/schemas/Problem'
    ProjectionBehind:
      description: minPosition was not reached in time.
      content:
        application/problem+json:
          schema:
            $ref: '#/components/schemas/Problem'
  schemas:
    CloudEvent:
      type: object
      description: A CloudEvents 1.0 event in JSON structured mode; the types and their data are docs/events.md.
      required: [specversion, id, source, type, subject, time, data]
      properties:
        specversion:
          const: '1.0'
        id:
          type: string
          minLength: 1
          maxLength: 255
        source:
          type: string
          minLength: 1
        type:
          type: string
        subject:
          type: string
        time:
          type: string
          format: date-time
        datacontenttype:
          const: application/json
        data:
          type: object
        expectedversion:
          type: integer
          minimum: 0
          description: Extension - the stream's version before this event (0 = a new stream).
      additionalProperties: true
    AppendAnswer:
      type: object
      required: [positions, new, alreadyPresent, events]
      properties:
        positions:
          type: array
          items:
            type: integer
        new:
          type: integer
        alreadyPresent:
          type: integer
        events:
          type: array
          items:
            type: object
            required: [index, source, id, position, new]
            properties:
              index:
                type: integer
              source:
                type: string
              id:
                type: string
              position:
                type: integer
              new:
                type: boolean
              flagged:
                type: array
                items:
                  type: string
    Problem:
      type: object
      description: RFC 9457 problem details.
      required: [type, title, status, detail]
      properties:
        type:
          type: string
          description: urn:fapiao:problem:SLUG (docs/http-api.md lists them).
        title:
          type: string
        status:
          type: integer
        detail:
          type: string
        problems:
          type: array
          items:
            type: object
            required: [attribute, expected]
            properties:
              index:
                type: integer
                description: The offending element of the batch (0-based).
              attribute:
                type: string
              expected:
                type: string
              got:
                type: string
        didYouMean:
          type: array
          items:
            type: string
    InvoiceState:
      type: object
      description: Issuer status, the invoice's summary, red letters, verification, and each receiving system's view (delivery, receipt, review), with the positions that made them.
      required: [key, issuer, systems, flags, lineage, lastPosition]
      properties:
        key:
          type: string
        issuer:
          type: object
        invoice:
          type: object
        redLetter:
          type: object
        verification:
          type: object
        systems:
          type: object
          additionalProperties:
            type: object
        flags:
          type: array
          items:
            type: string
        lineage:
          type: array
          items:
            type: integer
        lastPosition:
          type: integer
    Replay:
      type: object
      required: [key, cutoff, steps]
      properties:
        key:
          type: string
        cutoff:
          $ref: '#/components/schemas/Cutoff'
        steps:
          type: array
          items:
            type: object
            required: [position, time, recorded, late, source, type, summary, issuer, systems]
            properties:
              position:
                type: integer
              time:
                type: string
              recorded:
                type: string
              late:
                type: boolean
              source:
                type: string
              type:
                type: string
              summary:
                type: string
              issuer:
                type: string
              verification:
                type: string
              systems:
                type: object
                additionalProperties:
                  type: string
    Cutoff:
      type: object
      properties:
        at:
          type: string
        knownAt:
          type: string
        position:
          type: integer
    WhyAnswer:
      type: object
      required: [key, system, visible, causes, timeline, suggestions, cutoff]
      properties:
        key:
          type: string
        system:
          type: string
        user:
          type: [string, 'null']
        asOf:
          type: [string, 'null']
        visible:
          type: boolean
        causes:
          type: array
          description: The first is decisive.
          items:
            type: object
            required: [code, summary, evidence]
            properties:
              code:
                type: string
              summary:
                type: string
              since:
                type: [string, 'null']
              evidence:
                type: array
                items:
                  type: integer
              didYouMean:
                type: array
                items:
                  type: string
        timeline:
          type: array
          items:
            type: object
            required: [position, time, recorded, type, source, summary]
            properties:
              position:
                type: integer
              time:
                type: string
              recorded:
                type: string
              type:
                type: string
              source:
                type: string
              summary:
                type: string
        suggestions:
          type: array
          items:
            type: string
        didYouMean:
          type: array
          items:
            type: string
        query:
          type: object
        cutoff:
          $ref: '#/components/schemas/Cutoff'
    InvoiceListAnswer:
      type: object
      required: [items, checkpoint]
      properties:
        items:
          type: array
          items:
            type: object
            required: [key, status, issueDate, evidence]
            properties:
              key:
                type: string
              status:
                type: string
              issueDate:
                type: string
                format: date
              number:
                type: string
              sellerName:
                type: string
              buyerName:
                type: string
              totalWithTax:
                type: string
              evidence:
                type: array
                items:
                  type: integer
        next:
          type: string
          description: The cursor of the next page; absent on the last.
        checkpoint:
          type: integer
          description: The answer reflects the log up to this position.
    SubscriptionRequest:
      type: object
      properties:
        typePrefix:
          type: string
          description: Only event types starting with this (e.g. fapiao.delivery.).
        subject:
          type: string
          description: Only this stream.
        from:
          type: integer
          minimum: 0
          description: On creation, the first position to deliver (at most head + 1). Default - the head + 1.
    SubscriptionStatus:
      type: object
      required: [name, filters, owner, cursor, head, lagEvents, lagSeconds, updatedAt]
      properties:
        name:
          type: string
        filters:
          type: object
          properties:
            typePrefix:
              type: string
            subject:
              type: string
        owner:
          type: string
          description: The name of the token that created it.
        cursor:
          type: integer
          description: The last acknowledged position.
        head:
          type: integer
        lagEvents:
          type: integer
          description: Positions after the cursor, matching the filters or not.
        lagSeconds:
          type: number
          description: Now minus the recorded time of the first position after the cursor; 0 when caught up.
        updatedAt:
          type: string
          format: date-time
    Health:
      type: object
      required: [status, headPosition, projections, subscribers]
      properties:
        status:
          const: ok
        headPosition:
          type: integer
        subscribers:
          type: integer
        projections:
          type: array
          items:
            type: object
"""#
}
