package app

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// errorBody is every error answer: {"message": "..."}.
type errorBody struct {
	Message string `json:"message"`
}

// writeJSON answers code with v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"message":"internal error: encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// writeError answers err as {"message": ...} with its status (see toHTTP).
func writeError(w http.ResponseWriter, err error) {
	code, msg := toHTTP(err)
	writeJSON(w, code, errorBody{Message: msg})
}

// created answers 201 with an empty body.
func created(w http.ResponseWriter) { w.WriteHeader(http.StatusCreated) }

// handlerFunc is a handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// errorsAsJSON adapts h: a returned error is answered by writeError.
func errorsAsJSON(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	}
}

// maxBodyBytes bounds request bodies; the API's bodies are tiny.
const maxBodyBytes = 4 << 10

// decodeBody decodes r's JSON body into v, with a 400 that says what is
// wrong and shows the expected shape.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, example string) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		return badRequest("request body is not valid JSON (%v); send %s", err, example)
	}
	if dec.More() {
		return badRequest("request body has data after the JSON object; send %s", example)
	}
	return nil
}
