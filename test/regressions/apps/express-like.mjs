// The application of issue-10-loading.test.ts: an Express app exported as the application,
// as a user would first try. No express dependency: the shape express() returns, a
// `function (req, res, next)` that calls app.handle, with handle(), use() and listen().

const app = function (req, res, next) {
  app.handle(req, res, next);
};
app.handle = function handle(req, res) {
  res.setHeader("Content-Type", "text/plain");
  res.end("hello from express\n");
};
app.use = function use() {
  return app;
};
app.listen = function listen() {
  throw new Error("not a server here");
};

export const application = app;
