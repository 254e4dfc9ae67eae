/* trading_guard--1.4--1.5.sql — 1.5 seals the audit trail (tamper evidence) */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "ALTER EXTENSION trading_guard UPDATE TO '1.5'" to load this file. \quit
