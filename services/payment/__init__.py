"""The payment service: fees and obligations of dossiers, online payment through the national
payment platform, electronic receipts, refunds and the daily reconciliation.

Settings (environment, prefix ``PAYMENT_`` per service as usual): ``PAYMENT_MERCHANT_SECRET``
(+ ``_PREVIOUS`` while rotating), ``PAYMENT_MERCHANT_CODE``, ``PAYMENT_PLATFORM_URL`` (the
platform's pay page), ``PAYMENT_PUBLIC_URL`` / ``PAYMENT_NOTIFY_URL`` (where the local
platform sends its notifications), ``PAYMENT_QUERY_AFTER`` (seconds before a pending payment
is asked about), ``PAYMENT_TICK``, ``PAYMENT_EXPIRY_INTERVAL``, ``RECEIPT_FONT``;
``PAYMENT_PLATFORM_API_URL`` (the platform's merchant API: query and refund over HTTP),
``PAYMENT_SETTLEMENT_URL`` (the settlement file, ``{date}``), ``PAYMENT_PLATFORM_TIMEOUT``,
``PAYMENT_SERVER_IP``; ``LOCAL_ADAPTERS`` turns on the local stand-in platform.
"""
